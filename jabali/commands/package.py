"""`jabali package ...`: hosting packages carry the backup policy of their accounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import accounts
from ..app import App
from ..output import json_option, print_json, print_record, print_table


def _policy_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--keep-daily", type=int, default=None, help="Daily backups to keep (default 7)."),
        click.option("--keep-weekly", type=int, default=None, help="Weekly backups to keep (default 4)."),
        click.option("--keep-monthly", type=int, default=None, help="Monthly backups to keep (default 12)."),
        click.option("--tenant-visible/--no-tenant-visible", default=None, help="Tenants see their snapshots and may request restores (default on)."),
        click.option("--download/--no-download", default=None, help="Tenants may use Backup Download (default on)."),
        click.option("--auto-approve-restores/--no-auto-approve-restores", default=None, help="Tenant restore requests run without operator approval (default off)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("package")
def command() -> None:
    """Manage hosting packages and their backup policy (retention, tenant access)."""


@command.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List packages."""
    views = [accounts.package_view(p) for p in app.store.packages()]
    if as_json:
        print_json(views)
        return
    cols = ["name", "keep_daily", "keep_weekly", "keep_monthly", "tenant_visible", "download", "auto_approve_restores"]
    print_table([[v[c] for c in cols] for v in views], cols, "(no packages)")


@command.command("get")
@click.argument("name")
@json_option
@click.pass_obj
def get(app: App, name: str, as_json: bool) -> None:
    """Show one package."""
    view = accounts.package_view(accounts.get_package(app, name))
    print_json(view) if as_json else print_record(view)


@command.command("create")
@click.argument("name")
@_policy_options
@click.pass_obj
def create(app: App, name: str, **values: Any) -> None:
    """Create a package."""
    pkg = accounts.create_package(app, name, values)
    click.echo(f"created package {pkg.name}")


@command.command("update")
@click.argument("name")
@_policy_options
@click.pass_obj
def update(app: App, name: str, **values: Any) -> None:
    """Change a package's policy."""
    pkg = accounts.update_package(app, name, values)
    click.echo(f"updated package {pkg.name}")


@command.command("delete")
@click.argument("name")
@click.pass_obj
def delete(app: App, name: str) -> None:
    """Delete a package that no account uses."""
    pkg = accounts.delete_package(app, name)
    click.echo(f"deleted package {pkg.name}")
