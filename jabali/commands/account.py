"""`jabali account ...`: hosting accounts (Linux users) and the components backed up for each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import accounts
from ..app import App
from ..output import json_option, print_json, print_record, print_table


def _component_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--home", default=None, help="Home directory (default /home/USER)."),
        click.option("--database", "databases", multiple=True, help="MariaDB/MySQL database (repeatable; replaces the list)."),
        click.option("--pg-database", "pg_databases", multiple=True, help="PostgreSQL database (repeatable; replaces the list)."),
        click.option("--mail-dir", default=None, help="Maildir root of the account's mailboxes ('' for none)."),
        click.option("--zone-file", "zone_files", multiple=True, help="DNS zone file of one of its domains (repeatable; replaces the list)."),
        click.option("--crontab", default=None, help="Crontab file (default: the system spool file of USER)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _values(kwargs: dict[str, Any]) -> dict[str, Any]:
    # An empty tuple means "not given" for repeatable options.
    return {k: (list(v) if isinstance(v, tuple) and v else None if isinstance(v, tuple) else v) for k, v in kwargs.items()}


@click.group("account")
def command() -> None:
    """Manage hosting accounts and what is backed up for each."""


@command.command("list")
@click.option("--package", default=None, help="Only accounts of this package.")
@json_option
@click.pass_obj
def list_(app: App, package: str | None, as_json: bool) -> None:
    """List accounts."""
    views = [accounts.account_view(a) for a in app.store.accounts(package)]
    if as_json:
        print_json(views)
        return
    rows = [[v["user"], v["package"], v["home"], v["databases"], v["pg_databases"], v["mail_dir"], v["zone_files"]] for v in views]
    print_table(rows, ["user", "package", "home", "mysql", "postgres", "mail", "zones"], "(no accounts)")


@command.command("get")
@click.argument("user")
@json_option
@click.pass_obj
def get(app: App, user: str, as_json: bool) -> None:
    """Show one account."""
    view = accounts.account_view(accounts.get_account(app, user))
    print_json(view) if as_json else print_record(view)


@command.command("create")
@click.argument("user")
@click.option("--package", default=None, help="Package (default: the 'default' package, created if needed).")
@_component_options
@click.pass_obj
def create(app: App, user: str, package: str | None, **kwargs: Any) -> None:
    """Add a hosting account (an existing Linux user) to be backed up."""
    acct = accounts.create_account(app, user, package, _values(kwargs))
    click.echo(f"created account {acct.user} (package {acct.package})")


@command.command("update")
@click.argument("user")
@click.option("--package", default=None, help="Move the account to another package.")
@_component_options
@click.pass_obj
def update(app: App, user: str, package: str | None, **kwargs: Any) -> None:
    """Change an account's package or components."""
    acct = accounts.update_account(app, user, package, _values(kwargs))
    click.echo(f"updated account {acct.user}")


@command.command("delete")
@click.argument("user")
@click.pass_obj
def delete(app: App, user: str) -> None:
    """Stop backing an account up (its backups are kept until you forget them)."""
    acct = accounts.delete_account(app, user)
    click.echo(f"deleted account {acct.user}; its backups remain listed by `jabali snapshot list --account {acct.user}`")
