"""Schedules: a cron expression (parsed by croniter, never by hand) and the destinations it backs up to.

Only destinations whose last test passed may be chosen; that is checked on create and update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from croniter import croniter

from . import clock, destination_ops, validate
from .app import App
from .errors import Conflict, InvalidInput, NotFound
from .store import ScheduleRow


def check_cron(expr: str) -> str:
    expr = " ".join((expr or "").split())
    if "\n" in expr or not expr:
        raise InvalidInput("--cron", "must be a cron expression like '0 2 * * *'")
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise InvalidInput("--cron", f"{expr!r} is not a valid 5-field cron expression (minute hour day month weekday)")
    return expr


def next_run(expr: str, after: datetime) -> datetime:
    return croniter(expr, after).get_next(datetime)


def get(app: App, ref: str) -> ScheduleRow:
    sched = app.store.schedule(ref)
    if sched is None:
        raise NotFound(f"schedule {ref!r} not found")
    return sched


def _destination_ids(app: App, refs: list[str]) -> list[int]:
    if not refs:
        raise InvalidInput("--destination", "at least one destination is required")
    ids: list[int] = []
    for ref in refs:
        dest = destination_ops.lookup(app, ref)
        if not dest.last_test_ok:
            raise InvalidInput(
                "--destination",
                f"destination {dest.name!r} has not passed a test yet; run `jabali destination test {dest.name}`",
            )
        if dest.id not in ids:
            ids.append(dest.id)
    return ids


def check_targets(app: App, all_accounts: bool, packages: list[str], accounts: list[str]) -> list[tuple[str, str]]:
    """Validate schedule targets; return (kind, ref) pairs. No target at all means all accounts."""
    if all_accounts and (packages or accounts):
        raise InvalidInput("--all-accounts", "cannot be combined with --package or --account")
    out: list[tuple[str, str]] = [("all", "")] if all_accounts else []
    for ref in packages:
        if app.store.package(ref) is None:
            raise InvalidInput("--package", f"package {ref!r} not found")
        out.append(("package", ref))
    for ref in accounts:
        if app.store.account(ref) is None:
            raise InvalidInput("--account", f"account {ref!r} not found")
        out.append(("account", ref))
    return out


def create(
    app: App,
    name: str,
    cron: str,
    destinations: list[str],
    enabled: bool = True,
    targets: list[tuple[str, str]] | None = None,
) -> ScheduleRow:
    validate.name("--name", name)
    cron = check_cron(cron)
    ids = _destination_ids(app, destinations)
    if app.store.schedule(name) is not None:
        raise Conflict(f"--name: a schedule named {name!r} already exists")
    with app.store.tx():
        sched_id = app.store.insert_schedule(name, cron, enabled, ids)
        app.store.set_schedule_targets(sched_id, targets or [("all", "")])
    return get(app, str(sched_id))


def update(
    app: App,
    ref: str,
    *,
    name: str | None = None,
    cron: str | None = None,
    destinations: list[str] | None = None,
    enabled: bool | None = None,
    targets: list[tuple[str, str]] | None = None,
) -> ScheduleRow:
    sched = get(app, ref)
    new_name = sched.name
    if name is not None and name != sched.name:
        new_name = validate.name("--name", name)
        if app.store.schedule(new_name) is not None:
            raise Conflict(f"--name: a schedule named {new_name!r} already exists")
    new_cron = check_cron(cron) if cron is not None else sched.cron
    ids = _destination_ids(app, destinations) if destinations else list(sched.destination_ids)
    new_enabled = sched.enabled if enabled is None else enabled
    with app.store.tx():
        app.store.update_schedule(sched.id, new_name, new_cron, new_enabled, ids)
        if targets:
            app.store.set_schedule_targets(sched.id, targets)
    return get(app, str(sched.id))


def delete(app: App, ref: str) -> ScheduleRow:
    sched = get(app, ref)
    app.store.delete_schedule(sched.id)
    return sched


def view(app: App, sched: ScheduleRow) -> dict[str, Any]:
    names = []
    for did in sched.destination_ids:
        dest = app.store.destination(did)
        names.append(dest.name if dest else str(did))
    return {
        "id": sched.id,
        "name": sched.name,
        "cron": sched.cron,
        "enabled": sched.enabled,
        "destinations": names,
        "targets": [f"{kind}:{ref}" if ref else kind for kind, ref in app.store.schedule_targets(sched.id)] or ["all"],
        "last_run_at": sched.last_run_at,
        "next_run_at": clock.iso(next_run(sched.cron, clock.now())) if sched.enabled else None,
    }
