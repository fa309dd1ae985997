"""`jabali tenant ...`: what a hosting tenant may do for their own account (run through sudo; see
contrib/sudoers/jabali-tenant). The account is always the invoking user; no option names another."""

from __future__ import annotations

import click

from .. import restores, schedules, tenants
from ..app import App
from ..backups import schedule_accounts
from ..output import json_option, print_json, print_table
from .download import report
from .restore import print_requests


@click.group("tenant")
def command() -> None:
    """Self-service for hosting tenants: their snapshots, schedules, restores and downloads."""


@command.command("snapshots")
@json_option
@click.pass_obj
def snapshots(app: App, as_json: bool) -> None:
    """List your account's backups (time, size, destination)."""
    account, pkg = tenants.current(app)
    tenants.require_visible(pkg)
    copies = [c for c in app.store.copies(account=account.user) if c.kind == "account_full"]
    rows = [{"backup_id": c.backup_id, "time": c.time, "size": c.size, "destination": c.destination,
             "status": c.status, "components": c.components} for c in copies]
    if as_json:
        print_json(rows)
    else:
        print_table([[r["backup_id"], r["time"], r["size"], r["destination"], r["status"]] for r in rows],
                    ["backup", "time", "bytes", "destination", "status"], "(no backups yet)")


@command.command("schedules")
@json_option
@click.pass_obj
def schedules_(app: App, as_json: bool) -> None:
    """Show when your account is backed up and how long backups are kept (read-only)."""
    account, pkg = tenants.current(app)
    tenants.require_visible(pkg)
    rows = []
    for sched in app.store.schedules():
        if sched.enabled and account.user in {a.user for a in schedule_accounts(app, sched.id)}:
            view = schedules.view(app, sched)
            rows.append({"schedule": sched.name, "cron": sched.cron, "next_run_at": view["next_run_at"],
                         "destinations": view["destinations"], "keep_daily": pkg.keep_daily,
                         "keep_weekly": pkg.keep_weekly, "keep_monthly": pkg.keep_monthly})
    if as_json:
        print_json(rows)
    else:
        print_table([[r["schedule"], r["cron"], r["next_run_at"], r["keep_daily"], r["keep_weekly"], r["keep_monthly"]]
                     for r in rows], ["schedule", "cron (UTC)", "next run", "daily", "weekly", "monthly"],
                    "(no schedule covers your account)")


@command.command("restore")
@click.option("--snapshot", "backup_id", required=True, help="Backup id from `jabali tenant snapshots`.")
@click.option("--components", default="all", show_default=True, help="all, or a comma list of files,databases,mailboxes,dns,cron.")
@click.option("--target", type=click.Choice(restores.TARGETS), default="staging", show_default=True, help="in-place overwrites your current data; staging writes /home/<you>-restore-<time>/.")
@click.option("--path", "paths", multiple=True, help="Only this path of your home (repeatable).")
@json_option
@click.pass_obj
def restore(app: App, backup_id: str, components: str, target: str, paths: tuple[str, ...], as_json: bool) -> None:
    """Request a restore of one of your backups (queued for operator approval unless your package auto-approves)."""
    account, pkg = tenants.current(app)
    tenants.require_visible(pkg)
    req = restores.request(app, account.user, backup_id, restores.parse_components(components), target,
                           list(paths), f"tenant:{account.user}")
    if as_json:
        print_json(restores.view(app, req))
    else:
        click.echo(f"restore request {req.id}: {req.status}")


@command.command("requests")
@json_option
@click.pass_obj
def requests(app: App, as_json: bool) -> None:
    """Show your restore requests and their state."""
    account, pkg = tenants.current(app)
    tenants.require_visible(pkg)
    print_requests(app, app.store.restores(account=account.user), as_json)


@command.command("cancel")
@click.argument("rid", type=int, metavar="ID")
@click.pass_obj
def cancel(app: App, rid: int) -> None:
    """Cancel one of your requests that has not run yet."""
    account, pkg = tenants.current(app)
    tenants.require_visible(pkg)
    req = restores.cancel(app, rid, f"tenant:{account.user}", account=account.user)
    click.echo(f"restore request {req.id}: {req.status}")


@command.command("download")
@json_option
@click.pass_obj
def download(app: App, as_json: bool) -> None:
    """Make a fresh backup of your account and get it as one .tar.gz (expires after a day; one per hour)."""
    from .. import downloads
    from ..progress import Progress

    account, pkg = tenants.current(app)
    tenants.require_download(pkg)
    downloads.check_tenant_rate(app, account.user)
    report(downloads.create(app, account.user, Progress()), as_json)
