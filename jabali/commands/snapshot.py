"""`jabali snapshot ...`: the catalog of backups (answered locally), and rebuilding it from repositories."""

from __future__ import annotations

from dataclasses import asdict

import click

from ..app import App
from ..errors import InvalidInput
from ..output import json_option, print_json, print_table


@click.group("snapshot")
def command() -> None:
    """List backups from the local catalog, or rebuild it from the repositories."""


@command.command("list")
@click.option("--account", default=None, help="Only this account's backups.")
@click.option("--destination", default=None, help="Only backups on this destination.")
@click.option("--limit", type=int, default=None, help="At most this many rows, newest first.")
@json_option
@click.pass_obj
def list_(app: App, account: str | None, destination: str | None, limit: int | None, as_json: bool) -> None:
    """List backups (one row per backup and destination), newest first. Never contacts a repository."""
    dest_id = None
    if destination is not None:
        dest = app.store.destination(destination)
        if dest is None:
            raise InvalidInput("--destination", f"destination {destination!r} not found")
        dest_id = dest.id
    copies = app.store.copies(account=account, destination_id=dest_id, limit=limit)
    if as_json:
        print_json([asdict(c) for c in copies])
        return
    rows = [[c.backup_id, c.account, c.destination, c.time, c.status, c.size, c.files, c.components] for c in copies]
    print_table(rows, ["backup", "account", "destination", "time", "status", "bytes", "files", "components"], "(no backups)")


@command.command("sync")
@click.option("--destination", "destinations", multiple=True, help="Only this destination (repeatable); default all.")
@click.pass_obj
def sync(app: App, destinations: tuple[str, ...]) -> None:
    """Rebuild the catalog from the repositories (after losing the panel host, say)."""
    from .. import sync as sync_mod

    dests = [app.store.destination(d) for d in destinations] if destinations else app.store.destinations()
    for ref, dest in zip(destinations or [d.name for d in dests], dests):
        if dest is None:
            raise InvalidInput("--destination", f"destination {ref!r} not found")
    for dest in dests:
        count = sync_mod.sync_destination(app, dest)
        click.echo(f"{dest.name}: {count} backup(s) in the repository")
