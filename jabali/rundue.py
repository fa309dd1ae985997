"""`run-due` orchestration: one at a time (a file lock in the state directory), then every due item.

Given the App, `run_due` returns a Report: one line per item, and how many failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from . import backups, clock, defaults, destination_ops, downloads, paths, restores, schedules
from .app import App
from .errors import Busy, Conflict
from .progress import Progress


@dataclass
class Report:
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(1 for item in self.items if not item["ok"])

    def add(self, kind: str, target: str, ok: bool, message: str) -> None:
        self.items.append({"kind": kind, "target": target, "ok": ok, "message": message})

    def lines(self, failed_only: bool = False) -> list[str]:
        return [
            f"{i['kind']} {i['target']}: {'ok' if i['ok'] else 'FAILED'} - {i['message']}"
            for i in self.items
            if not (failed_only and i["ok"])
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "failures": self.failures}


def run_due(app: App, *, dry_run: bool = False) -> Report:
    lock = FileLock(str(paths.sub_dir("locks") / "run-due.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise Busy("another `jabali run-due` is running; this one exits without doing anything") from None
    try:
        return _run(app, dry_run)
    finally:
        lock.release()


def due_schedules(app: App) -> list:
    """Enabled schedules whose next cron time after their last run (or creation) has passed; however many
    slots were missed, a schedule runs once."""
    now = clock.now()
    due = []
    for sched in app.store.schedules():
        base = clock.parse(sched.last_run_at or sched.created_at)
        if sched.enabled and schedules.next_run(sched.cron, base) <= now:
            due.append(sched)
    return due


def _run(app: App, dry_run: bool) -> Report:
    report = Report()
    now = clock.now()
    if not dry_run:
        for backup_id in backups.recover_interrupted(app):
            report.add("recover", backup_id, False, backups.INTERRUPTED)
        for rid in restores.recover_interrupted(app):
            report.add("recover", f"restore {rid}", False, "interrupted restore marked failed")
        if app.store.accounts():
            defaults.ensure(app)
    touched: dict[int, set[str]] = {}
    for sched in due_schedules(app):
        for account in backups.schedule_accounts(app, sched.id):
            if dry_run:
                names = [d.name for d in map(app.store.destination, sched.destination_ids) if d]
                report.add("backup", f"{account.user} -> {', '.join(names)}", True, f"would run (schedule {sched.name})")
                continue
            _backup(app, report, account.user, [str(d) for d in sched.destination_ids], sched.name, touched)
        if not dry_run:
            app.store.set_schedule_last_run(sched.id, clock.iso(now))
    for dest_id, users in touched.items():
        result = backups.apply_retention(app, dest_id, users)
        if result.forgotten or result.error:
            report.add("retention", result.destination, result.error is None,
                       result.error or f"forgot {result.forgotten} backup(s), pruned once")
    for req in app.store.restores(status="approved"):
        if dry_run:
            report.add("restore", f"{req.id} ({req.account})", True, "would run (dry run)")
            continue
        try:
            done = restores.execute(app, req.id, "run-due")
        except Busy as exc:  # a backup, download or restore of the account is running: the next run-due retries
            report.add("restore", f"{req.id} ({req.account})", False, str(exc))
            continue
        except Conflict:  # cancelled (or run by `restore run`) since the list was read: nothing to do
            continue
        report.add("restore", f"{done.id} ({done.account})", done.status == "done", done.message or done.status)
    if not dry_run:
        for row in downloads.expire(app):
            report.add("download", row.path, True, "expired archive deleted")
    if dry_run:
        for dest in app.store.destinations():
            if not dest.last_test_at or now - clock.parse(dest.last_test_at) >= destination_ops.RETEST_AFTER:
                report.add("retest", dest.name, True, "would re-test (dry run)")
        return report
    for dest, result in destination_ops.retest_due(app):
        report.add("retest", dest.name, result.ok, result.message)
    return report


def _backup(app: App, report: Report, user: str, dest_refs: list[str], schedule: str,
            touched: dict[int, set[str]]) -> None:
    try:
        outcome = backups.backup_now(app, user, dest_refs, schedule=schedule, progress=Progress())
    except Exception as exc:  # one account's trouble must not stop the others (Ctrl-C/SIGTERM still do)
        message = str(exc) or exc.__class__.__name__
        report.add("backup", user, False, message)
        if not isinstance(exc, Busy):
            app.store.add_event("backup_failed", f"backup of {user} could not run: {message}", account=user)
        return
    for copy in outcome.copies:
        ok = copy.status in ("ok", "warning")
        report.add("backup", f"{user} -> {copy.destination}", ok, f"{copy.status} {outcome.backup_id} {copy.message}".strip())
        if copy.snapshots:
            touched.setdefault(copy.destination_id, set()).add(user)
