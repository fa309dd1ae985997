"""`jabali snapshot ...`: the catalog of backups (answered locally), and rebuilding it from repositories."""

from __future__ import annotations

from dataclasses import asdict

import click

from ..app import App
from ..errors import InvalidInput
from ..output import json_option, print_json, print_table
from ..store import DestinationRow


def lookup(app: App, ref: str) -> DestinationRow:
    # Imported on use: destination_ops pulls in restic, probe and filelock, and `snapshot list` (the panel
    # calls it often) needs none of them.
    from ..destination_ops import lookup as find

    return find(app, ref)


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
    dest_id = lookup(app, destination).id if destination is not None else None
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

    dests = [lookup(app, d) for d in destinations] if destinations else app.store.destinations()
    for dest in dests:
        count = sync_mod.sync_destination(app, dest)
        click.echo(f"{dest.name}: {count} backup(s) in the repository")


@command.command("ls")
@click.argument("backup_id")
@click.argument("path", required=False)
@click.option("--destination", default=None, help="Browse this destination's copy (default: the first complete one).")
@json_option
@click.pass_obj
def ls(app: App, backup_id: str, path: str | None, destination: str | None, as_json: bool) -> None:
    """Browse the files of a backup: everything, or below PATH (absolute, or relative to the home)."""
    from .. import restic
    from ..restore_run import check_paths, source_for

    copies = app.store.copies(backup_id=backup_id)
    if not copies:
        raise InvalidInput("BACKUP_ID", f"no backup {backup_id!r} in the catalog")
    account = app.store.account(copies[0].account)
    if account is None:
        raise InvalidInput("BACKUP_ID", f"the account of backup {backup_id} is no longer configured")
    dest_id = lookup(app, destination).id if destination is not None else None
    src = source_for(app, account, backup_id, dest_id)
    home = (src.components.get("files") or [account.config["home"]])[0]
    args = ["ls", "--json", src.snapshots["files"].snapshot_id]
    if path:
        args.append(path if path.startswith("/") else f"{home}/{check_paths([path])[0]}")
    nodes = [n for n in restic.run(src.repo, args).json_lines() if n.get("struct_type") == "node"]
    if as_json:
        print_json([{k: n.get(k) for k in ("path", "type", "size", "permissions", "mtime", "uid", "gid")} for n in nodes])
        return
    rows = [[n.get("permissions"), n.get("size", ""), (n.get("mtime") or "")[:19], n.get("path")] for n in nodes]
    print_table(rows, ["mode", "size", "mtime", "path"], "(empty)")
