"""One clock for the whole program, so schedules and retention can be tested.

`JABALI_NOW` (ISO 8601, testing only) freezes time for a whole process; tests in-process monkeypatch `now`.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone


def now() -> datetime:
    fake = os.environ.get("JABALI_NOW")
    if fake:
        value = datetime.fromisoformat(fake)
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)
