"""`run-due` orchestration: one at a time (a file lock in the state directory), then every due item.

Given the App, `run_due` returns a Report: one line per item, and how many failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from . import clock, destination_ops, paths
from .app import App
from .errors import Busy


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


def _run(app: App, dry_run: bool) -> Report:
    report = Report()
    if dry_run:
        now = clock.now()
        for dest in app.store.destinations():
            if not dest.last_test_at or now - clock.parse(dest.last_test_at) >= destination_ops.RETEST_AFTER:
                report.add("retest", dest.name, True, "would re-test (dry run)")
        return report
    for dest, result in destination_ops.retest_due(app):
        report.add("retest", dest.name, result.ok, result.message)
    return report
