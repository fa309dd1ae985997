"""`jabali restore ...`: restore requests, approval, execution and undo (operator side)."""

from __future__ import annotations

import click

from .. import restores
from ..app import App
from ..errors import OperationFailed
from ..output import json_option, print_json, print_record, print_table


def print_requests(app: App, reqs: list, as_json: bool) -> None:
    views = [restores.view(app, r) for r in reqs]
    if as_json:
        print_json(views)
        return
    rows = [[v["id"], v["account"], v["backup_id"], v["components"], v["target"], v["status"], v["requested_by"],
             v["requested_at"], v["message"]] for v in views]
    print_table(rows, ["id", "account", "backup", "components", "target", "status", "by", "at", "message"],
                "(no restore requests)")


def _report(app: App, req, as_json: bool) -> None:
    if as_json:
        print_json(restores.view(app, req))
    else:
        click.echo(f"restore request {req.id}: {req.status}" + (f" - {req.message}" if req.message else ""))


@click.group("restore")
def command() -> None:
    """Request, approve and run restores of account backups."""


@command.command("request")
@click.option("--account", "user", required=True, help="The account to restore.")
@click.option("--snapshot", "backup_id", required=True, help="Backup id (from `jabali snapshot list`).")
@click.option("--components", default="all", show_default=True, help="all, or a comma list of files,databases,mailboxes,dns,cron.")
@click.option("--target", type=click.Choice(restores.TARGETS), default="staging", show_default=True, help="in-place overwrites live data; staging writes /home/<user>-restore-<time>/.")
@click.option("--path", "paths", multiple=True, help="Only this path of the home (repeatable; implies files).")
@click.option("--destination", default=None, help="Restore from this destination's copy (default: the first complete one).")
@json_option
@click.pass_obj
def request(app: App, user: str, backup_id: str, components: str, target: str, paths: tuple[str, ...],
            destination: str | None, as_json: bool) -> None:
    """File a restore request (queued for approval unless the package auto-approves)."""
    req = restores.request(app, user, backup_id, restores.parse_components(components), target, list(paths),
                           restores.operator(), destination)
    _report(app, req, as_json)


@command.command("list")
@click.option("--status", default=None, type=click.Choice(["pending", "approved", "rejected", "cancelled", "running", "done", "failed"]), help="Only requests in this state.")
@click.option("--account", default=None, help="Only this account's requests.")
@json_option
@click.pass_obj
def list_(app: App, status: str | None, account: str | None, as_json: bool) -> None:
    """List restore requests."""
    print_requests(app, app.store.restores(status, account), as_json)


@command.command("show")
@click.argument("rid", type=int, metavar="ID")
@json_option
@click.pass_obj
def show(app: App, rid: int, as_json: bool) -> None:
    """Show one request with its history (who did what, when)."""
    view = restores.view(app, restores.get(app, rid), history=True)
    if as_json:
        print_json(view)
        return
    history = view.pop("history")
    print_record(view)
    click.echo("")
    print_table([[h["at"], h["actor"], h["status"], h["note"]] for h in history], ["at", "by", "status", "note"])


@command.command("approve")
@click.argument("rid", type=int, metavar="ID")
@click.pass_obj
def approve(app: App, rid: int) -> None:
    """Approve a pending request (run-due runs it, or `restore run ID` now)."""
    _report(app, restores.approve(app, rid, restores.operator()), False)


@command.command("reject")
@click.argument("rid", type=int, metavar="ID")
@click.option("--reason", required=True, help="Why (shown to the tenant).")
@click.pass_obj
def reject(app: App, rid: int, reason: str) -> None:
    """Reject a pending request."""
    _report(app, restores.reject(app, rid, restores.operator(), reason), False)


@command.command("cancel")
@click.argument("rid", type=int, metavar="ID")
@click.pass_obj
def cancel(app: App, rid: int) -> None:
    """Cancel a pending or approved request."""
    _report(app, restores.cancel(app, rid, restores.operator()), False)


@command.command("run")
@click.argument("rid", type=int, metavar="ID")
@json_option
@click.pass_obj
def run(app: App, rid: int, as_json: bool) -> None:
    """Run an approved request now (a request runs once)."""
    req = restores.execute(app, rid, restores.operator())
    _report(app, req, as_json)
    if req.status != "done":
        raise OperationFailed(f"restore request {rid} failed: {req.message}")


@command.command("undo")
@click.argument("rid", type=int, metavar="ID")
@json_option
@click.pass_obj
def undo(app: App, rid: int, as_json: bool) -> None:
    """Put the account back as it was before in-place restore ID (from its pre-restore backup)."""
    req = restores.undo(app, rid, restores.operator())
    _report(app, req, as_json)
    if req.status != "done":
        raise OperationFailed(f"undo of restore {rid} failed: {req.message}")
