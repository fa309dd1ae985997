"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from click.testing import Result


def db_dump(state: Path) -> tuple[bytes, list[str]]:
    """The database as bytes plus a logical dump: both must be unchanged by a refused request."""
    db = state / "jabali.db"
    if not db.exists():
        return b"", []
    conn = sqlite3.connect(db)
    try:
        dump = list(conn.iterdump())
    finally:
        conn.close()
    return db.read_bytes(), dump


def out_json(result: Result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class ProcWatcher:
    """Polls /proc while a block runs and records argv and environment of every `restic` process that is a
    child of this test process (other restic processes on the machine are ignored)."""

    def __init__(self, name: str = "restic") -> None:
        self.name = name
        self.seen: dict[int, tuple[list[str], dict[str, str]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ProcWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) in self.seen:
                    continue
                try:
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    if ppid != os.getpid():
                        continue
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    if not argv or os.path.basename(argv[0].decode(errors="replace")) != self.name:
                        continue
                    env_raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                env = dict(e.decode(errors="replace").split("=", 1) for e in env_raw if b"=" in e)
                self.seen[int(pid)] = ([a.decode(errors="replace") for a in argv if a], env)
            time.sleep(0.005)
