"""`jabali schedule ...`: when backups run and which destinations they go to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import schedules
from ..app import App
from ..output import json_option, print_json, print_record, print_table


def _target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--account", "accounts", multiple=True, help="Back up this account (repeatable).")(fn)
    fn = click.option("--package", "packages", multiple=True, help="Back up every account of this package (repeatable).")(fn)
    return click.option("--all-accounts", is_flag=True, help="Back up all accounts (the default).")(fn)


@click.group("schedule")
def command() -> None:
    """Manage backup schedules."""


@command.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List schedules."""
    views = [schedules.view(app, s) for s in app.store.schedules()]
    if as_json:
        print_json(views)
        return
    rows = [[v["id"], v["name"], v["cron"], v["enabled"], v["destinations"], v["targets"], v["last_run_at"], v["next_run_at"]] for v in views]
    print_table(rows, ["id", "name", "cron", "enabled", "destinations", "targets", "last run", "next run"], "(no schedules)")


@command.command("get")
@click.argument("ref", metavar="ID-OR-NAME")
@json_option
@click.pass_obj
def get(app: App, ref: str, as_json: bool) -> None:
    """Show one schedule."""
    view = schedules.view(app, schedules.get(app, ref))
    print_json(view) if as_json else print_record(view)


@command.command("create")
@click.option("--name", required=True, help="Unique schedule name.")
@click.option("--destination", "destinations", multiple=True, required=True, help="Destination id or name (repeatable); it must have passed a test.")
@click.option("--cron", required=True, help="5-field cron expression, e.g. '0 2 * * *' (server local time is not used: UTC).")
@click.option("--disabled", is_flag=True, help="Create the schedule disabled.")
@_target_options
@click.pass_obj
def create(app: App, name: str, destinations: tuple[str, ...], cron: str, disabled: bool, all_accounts: bool,
           packages: tuple[str, ...], accounts: tuple[str, ...]) -> None:
    """Create a schedule. Without --package or --account it backs up all accounts."""
    targets = schedules.check_targets(app, all_accounts, list(packages), list(accounts))
    sched = schedules.create(app, name, cron, list(destinations), enabled=not disabled, targets=targets)
    click.echo(f"created schedule {sched.name} (id {sched.id})")


@command.command("update")
@click.argument("ref", metavar="ID-OR-NAME")
@click.option("--name", default=None, help="Rename the schedule.")
@click.option("--destination", "destinations", multiple=True, help="Replace the destinations (repeatable).")
@click.option("--cron", default=None, help="New cron expression.")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the schedule.")
@_target_options
@click.pass_obj
def update(app: App, ref: str, name: str | None, destinations: tuple[str, ...], cron: str | None, enabled: bool | None,
           all_accounts: bool, packages: tuple[str, ...], accounts: tuple[str, ...]) -> None:
    """Change a schedule (target options replace the current targets)."""
    targets = schedules.check_targets(app, all_accounts, list(packages), list(accounts))
    sched = schedules.update(app, ref, name=name, cron=cron, destinations=list(destinations) or None, enabled=enabled,
                             targets=targets or None)
    click.echo(f"updated schedule {sched.name}")


@command.command("delete")
@click.argument("ref", metavar="ID-OR-NAME")
@click.pass_obj
def delete(app: App, ref: str) -> None:
    """Delete a schedule (its backups stay in the repositories)."""
    sched = schedules.delete(app, ref)
    click.echo(f"deleted schedule {sched.name}")
