"""Progress on a terminal for long work; silence under cron (stderr not a terminal)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._label = ""

    def step(self, label: str) -> None:
        self._label = label
        if self.enabled:
            sys.stderr.write(f"\r\033[K{label} ...")
            sys.stderr.flush()

    def restic_message(self, message: dict[str, Any]) -> None:
        """Render restic's JSON status lines (backup/restore) as one updating line."""
        if not self.enabled or message.get("message_type") != "status":
            return
        pct = float(message.get("percent_done") or 0) * 100
        done = int(message.get("bytes_done") or 0) >> 20
        total = int(message.get("total_bytes") or 0) >> 20
        sys.stderr.write(f"\r\033[K{self._label}: {pct:5.1f}% ({done} / {total} MiB)")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
