"""Retention over whole backups, with restic's keep-daily/weekly/monthly semantics.

The keep set is computed here (never by `restic forget --keep-*`, which would see single snapshots and
could keep half of a backup); the snapshots of every backup not kept are then forgotten by id, and each
destination is pruned once per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from . import clock

GOOD = ("ok", "warning")


@dataclass(frozen=True)
class Policy:
    keep_daily: int
    keep_weekly: int
    keep_monthly: int

    @property
    def keeps_all(self) -> bool:
        # restic refuses an empty policy; jabali treats all-zero as "keep everything", never "delete all".
        return not (self.keep_daily or self.keep_weekly or self.keep_monthly)


def _buckets(when: datetime) -> tuple[str, str, str]:
    iso = when.isocalendar()
    return when.strftime("%Y-%m-%d"), f"{iso[0]}-{iso[1]:02d}", when.strftime("%Y-%m")


def keep_set(backups: Sequence[tuple[str, str]], policy: Policy) -> set[str]:
    """Given (backup id, ISO time) pairs, return the ids restic's policy would keep: newest first, each rule
    keeps the newest backup of each of its most recent N days / ISO weeks / months."""
    if policy.keeps_all:
        return {b for b, _ in backups}
    ordered = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    counts = [policy.keep_daily, policy.keep_weekly, policy.keep_monthly]
    last: list[str | None] = [None, None, None]
    keep: set[str] = set()
    for backup_id, at in ordered:
        values = _buckets(clock.parse(at))
        for i, value in enumerate(values):
            if counts[i] > 0 and value != last[i]:
                keep.add(backup_id)
                last[i] = value
                counts[i] -= 1
    return keep


def to_forget(copies: Sequence[tuple[str, str, str]], policy: Policy) -> list[str]:
    """Given (backup id, time, status) of one account on one destination, return the backup ids to forget:
    good backups outside the keep set, and failed or partial ones once a newer good backup exists."""
    good = [(b, t) for b, t, s in copies if s in GOOD]
    keep = keep_set(good, policy)
    newest_good = max((t for _, t in good), default=None)
    out = [b for b, _ in good if b not in keep]
    out += [b for b, t, s in copies if s not in GOOD and newest_good is not None and t < newest_good]
    return out
