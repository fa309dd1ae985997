"""Shared helpers for the benchmark scripts in bench/ (not a test module: nothing here asserts).

Every script runs standalone (`python bench/<name>.py`), as root on the panel host, in temp dirs it removes.
The repository's tests/ directory is put on sys.path so the scripts reuse the server starters of
tests/srv_db.py and the account builder of tests/account_data.py.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

RESTIC = shutil.which("restic") or "restic"


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(float(value)) if value else default


def jabali_argv(*args: str) -> list[str]:
    """`jabali ARGS` the way the console script runs it (without a pyenv/venv shim in front)."""
    return [sys.executable, "-m", "jabali", *args]


def jabali_env(state: Path, key_file: Path, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JABALI_", "RESTIC_"))}
    env.update(JABALI_STATE_DIR=str(state), JABALI_KEY_FILE=str(key_file), JABALI_CONFIG=str(config))
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


@dataclass
class Timed:
    wall: float
    cpu: float  # user + sys of the child and every descendant it waited for
    returncode: int
    stdout: bytes
    stderr: bytes
    started: float = 0.0  # time.time() when it was started


def timed(argv: Sequence[str], env: dict[str, str] | None = None, stdin: bytes | None = None,
          cwd: str | None = None) -> Timed:
    """Run argv; wall time and the CPU time of the whole process tree (os.wait4 rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Timed(wall, usage.ru_utime + usage.ru_stime, proc.returncode, out.read(), err.read(), started)


def check(result: Timed, what: str) -> Timed:
    if result.returncode != 0:
        sys.stderr.write(f"{what} failed (exit {result.returncode}):\n{result.stdout.decode(errors='replace')[-2000:]}"
                         f"\n{result.stderr.decode(errors='replace')[-2000:]}\n")
        raise SystemExit(1)
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def du_bytes(path: Path) -> int:
    """Disk blocks used below path (like `du -s -B1`), tolerant of files vanishing meanwhile."""
    total = 0
    stack = [str(path)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def counting_restic(directory: Path) -> tuple[Path, Path]:
    """A `restic` that runs the real one and logs "<start> <end> <exit> <args>" (epoch seconds) per call.
    Both sides of a comparison go through it, so its cost (one bash start, ~2 ms) is the same per process."""
    log = directory / "restic-calls.log"
    wrapper = directory / "restic"
    wrapper.write_text(f'#!/bin/bash\nstart=$EPOCHREALTIME\n{RESTIC} "$@"\nrc=$?\n'
                       f'echo "$start $EPOCHREALTIME $rc $*" >> {log}\nexit $rc\n')
    wrapper.chmod(0o755)
    return wrapper, log


@dataclass
class Call:
    command: str  # the restic subcommand
    start: float
    end: float
    args: str


def restic_calls(log: Path) -> list[Call]:
    """The logged restic calls, in start order."""
    if not log.exists():
        return []
    commands = {"backup", "version", "init", "snapshots", "cat", "key", "forget", "prune", "unlock", "dump",
                "restore", "ls", "stats", "check"}
    out = []
    for line in log.read_text().splitlines():
        start, end, _rc, args = (line.split(" ", 3) + [""])[:4]
        words = args.split()
        command = next((w for w in words if w in commands), words[0] if words else "?")
        out.append(Call(command, float(start), float(end), args))
    return sorted(out, key=lambda c: c.start)


def start_mariadb():
    import srv_db

    try:
        srv = srv_db._start_mariadb()
    except BaseException as exc:  # pytest.skip raises a BaseException subclass
        raise SystemExit(f"cannot start MariaDB: {exc}") from None
    srv_db._register_stop(srv.stop)
    return srv


def start_postgres():
    import srv_db

    try:
        srv = srv_db._start_postgres()
    except BaseException as exc:
        raise SystemExit(f"cannot start PostgreSQL: {exc}") from None
    srv_db._register_stop(srv.stop)
    return srv


def stop_mariadb(srv) -> None:
    if srv is not None:
        srv.stop()
        shutil.rmtree(srv.basedir, ignore_errors=True)


def stop_postgres(srv) -> None:
    if srv is not None:
        srv.stop()
        shutil.rmtree(srv.socket_dir, ignore_errors=True)


def write_config(path: Path, mariadb=None, postgres=None, crontab_dir: Path | None = None,
                 hostname: str = "bench-host") -> None:
    """A JABALI_CONFIG ini, as tests/test_backup_e2e.py writes it."""
    lines = []
    if mariadb is not None:
        lines += ["[mysql]", f"defaults_file = {mariadb.defaults_file}"]
    if postgres is not None:
        lines += ["[postgres]", f"host = {postgres.socket_dir}", f"port = {postgres.port}", "user = postgres",
                  f"bindir = {postgres.bindir}"]
    lines += ["[paths]", f"crontab_dir = {crontab_dir or path.parent / 'crontabs'}", f"hostname = {hostname}"]
    path.write_text("\n".join(lines) + "\n")


def need_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root (the benchmarks start database servers and create Linux users)")
