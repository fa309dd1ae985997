"""`jabali backup ACCOUNT`: back one account up now."""

from __future__ import annotations

import click

from .. import backups
from ..app import App
from ..errors import OperationFailed, Partial
from ..output import json_option, print_json, print_table
from ..progress import Progress


@click.command("backup")
@click.argument("user")
@click.option("--destination", "destinations", multiple=True, help="Destination (repeatable); default: the account's scheduled destinations, else the local default.")
@json_option
@click.pass_obj
def command(app: App, user: str, destinations: tuple[str, ...], as_json: bool) -> None:
    """Back up one account now (home files, databases, mailboxes, DNS zones, crontab), with progress on a terminal.

    Exit status 0 if every destination got a complete backup, 3 if some did, 1 if none did.
    """
    backups.recover_interrupted(app)
    outcome = backups.backup_now(app, user, list(destinations), progress=Progress())
    rows = [[c.destination, c.status, sum(s.size for s in c.snapshots), c.message or "-"] for c in outcome.copies]
    if as_json:
        print_json({"backup_id": outcome.backup_id, "account": user, "status": outcome.status,
                    "destinations": [{"destination": r[0], "status": r[1], "size": r[2], "message": r[3]} for r in rows]})
    else:
        click.echo(f"backup {outcome.backup_id} of {user}: {outcome.status}")
        print_table(rows, ["destination", "status", "bytes", "message"])
    if outcome.status == "failed":
        raise OperationFailed(f"backup of {user} failed on every destination; see `jabali events list`")
    if outcome.status == "partial":
        raise Partial(f"backup of {user} is incomplete; see `jabali events list`")
