"""`jabali download ...`: Backup Download archives (operator side)."""

from __future__ import annotations

from dataclasses import asdict

import click

from .. import downloads
from ..app import App
from ..output import json_option, print_json, print_table
from ..progress import Progress


@click.group("download")
def command() -> None:
    """Make and list Backup Download archives."""


def report(row, as_json: bool) -> None:
    if as_json:
        print_json(asdict(row))
    else:
        click.echo(f"{row.path} ({row.size} bytes, expires {row.expires_at})")


@command.command("create")
@click.argument("user")
@json_option
@click.pass_obj
def create(app: App, user: str, as_json: bool) -> None:
    """Take a fresh backup of USER and write it as one .tar.gz the tenant can read."""
    report(downloads.create(app, user, Progress()), as_json)


@command.command("list")
@click.option("--account", default=None, help="Only this account's archives.")
@json_option
@click.pass_obj
def list_(app: App, account: str | None, as_json: bool) -> None:
    """List archives that have not expired yet."""
    rows = app.store.downloads(account)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table([[r.id, r.account, r.path, r.size, r.created_at, r.expires_at] for r in rows],
                ["id", "account", "path", "bytes", "created", "expires"], "(no downloads)")
