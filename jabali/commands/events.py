"""`jabali events ...`: what went wrong (and when), for operators and notification channels."""

from __future__ import annotations

from dataclasses import asdict

import click

from ..app import App
from ..output import json_option, print_json, print_table


@click.group("events")
def command() -> None:
    """Show recorded events, such as backup_failed."""


@command.command("list")
@click.option("--kind", default=None, help="Only events of this kind, e.g. backup_failed.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000), help="At most this many, newest first.")
@json_option
@click.pass_obj
def list_(app: App, kind: str | None, limit: int, as_json: bool) -> None:
    """List events, newest first."""
    events = app.store.events(kind, limit)
    if as_json:
        print_json([asdict(e) for e in events])
        return
    rows = [[e.id, e.at, e.kind, e.destination, e.account, e.component, e.message] for e in events]
    print_table(rows, ["id", "at", "kind", "destination", "account", "component", "message"], "(no events)")
