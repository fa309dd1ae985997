"""jabali's own cost per (account, destination) pair in `run-due`, with restic replaced by a stub that does no
work (bench/stub_restic.sh via JABALI_RESTIC): 2000 accounts x 3 destinations by default, one due schedule,
and HISTORY days of earlier backups in the catalog so retention has one backup per pair to forget.

The stub's own cost (fork + exec + sh + the pipes, measured from Python with the same argv) times the number
of stub calls is subtracted from run-due's wall time; what is left, per pair, is jabali's bookkeeping
(catalog reads and writes, secrets, locks, manifests, starting processes). A second, in-process run reports
jabali's CPU time alone (getrusage RUSAGE_SELF: children excluded) and, with PROFILE=1, the hot spots.

    python bench/run_due_bookkeeping.py
    ACCOUNTS=200 python bench/run_due_bookkeeping.py      # quick
    PROFILE=1 python bench/run_due_bookkeeping.py         # + cProfile top functions of the in-process run

Environment: ACCOUNTS (2000), DESTINATIONS (3), HISTORY (8), PROFILE (0), KEEP=1 keeps the temp dir.
Accounts are catalog rows (no Linux users: only `account create` checks that); they share one small home.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

HERE = Path(__file__).resolve().parent
CREATED = datetime(2031, 3, 1, 12, 0, tzinfo=timezone.utc)  # schedule created, destinations tested
RUN_AT = datetime(2031, 3, 2, 2, 1, tzinfo=timezone.utc)  # "0 2 * * *" is due


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def setup(work: Path, accounts: int, destinations: int, history: int) -> dict[str, str]:
    """A state dir with the destinations (tested), one due schedule for all accounts, the accounts and their
    earlier backups; returns the environment jabali runs with."""
    work.mkdir(parents=True)
    stub = work / "restic"
    shutil.copy(HERE / "stub_restic.sh", stub)
    stub.chmod(0o755)
    home = work / "home"
    (home / "public_html").mkdir(parents=True)
    (home / "public_html" / "index.html").write_text("hello\n")
    config = work / "jabali.conf"
    (work / "crontabs").mkdir()
    C.write_config(config, crontab_dir=work / "crontabs")
    env = C.jabali_env(work / "state", work / "master.key", config, JABALI_RESTIC=str(stub), JABALI_NOW=iso(CREATED))
    code = f"""
import json, secrets, sys
from datetime import datetime, timedelta
from jabali import accounts, destination_ops
from jabali.app import App
from jabali.store import BackupCopy, SnapshotRow
app = App()
pkg = accounts.ensure_default_package(app)
ids = []
for i in range({destinations}):
    dest = destination_ops.create(app, "local", f"dest{{i}}", {{"path": "{work}/repo-" + str(i)}})
    app.store.record_test(dest.id, "{iso(CREATED)}", True, "ok")
    ids.append(dest.id)
sid = app.store.insert_schedule("bench", "0 2 * * *", True, ids)
app.store.set_schedule_targets(sid, [("all", "")])
app.store.set_meta("defaults_created", "1")
config = {{"home": "{home}", "mail_dir": None, "crontab": None, "zone_files": [], "databases": [], "pg_databases": []}}
with app.store.tx():
    for n in range({accounts}):
        user = f"bu{{n:05d}}"
        app.store.insert_account(user, pkg.id, config)
        for day in range({history}, 0, -1):
            when = datetime.fromisoformat("{iso(RUN_AT)}") - timedelta(days=day, minutes=1) + timedelta(seconds=n)
            at = when.isoformat(timespec="seconds")
            bid = when.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
            app.store.upsert_backup(bid, user, "account_full", at, "ok", ["files"])
            for did in ids:
                app.store.put_copy(BackupCopy(bid, did, "", user, at, "ok", None, 1, 1, ["files"]))
                app.store.put_snapshot(SnapshotRow(did, secrets.token_hex(32), bid, "files", at, 1, 1, ["{home}"]))
"""
    C.check(C.timed([sys.executable, "-c", code], env), "setup")
    return env


def stub_cost(stub: Path, home: Path, calls: int = 300) -> float:
    """Seconds per stub call, as a Python parent sees it (Popen with pipes, exec, sh, wait), same argv shape."""
    argv = [str(stub), "--cache-dir", "/tmp/x", "--password-file", "/dev/fd/3", "backup", "--json", "--host", "h",
            "--time", "2031-03-02 02:01:00", "--tag", "jabali", "--tag", "account=bu00001", "--tag", "backup=x",
            "--tag", "component=files", "--tag", "kind=account_full", "--tag", "expect=files", str(home), "/m.json"]
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    for _ in range(20):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    start = time.perf_counter()
    for _ in range(calls):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, start_new_session=True)
    return (time.perf_counter() - start) / calls


def count(env: dict[str, str], sql: str) -> int:
    conn = sqlite3.connect(Path(env["JABALI_STATE_DIR"]) / "jabali.db")
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def in_process(env: dict[str, str], profile: bool) -> tuple[float, float, str]:
    """run-due inside a child Python (fresh imports), timing jabali's own CPU (RUSAGE_SELF excludes the stubs)."""
    code = """
import cProfile, io, json, pstats, resource, sys, time
from jabali import rundue
from jabali.app import App
profile = sys.argv[1] == "1"
app = App()
prof = cProfile.Profile() if profile else None
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
if prof: prof.enable()
report = rundue.run_due(app)
if prof: prof.disable()
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
text = ""
if prof:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats(30)
    text = out.getvalue()
print(json.dumps({"wall": t1 - t0, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                  "failures": report.failures, "profile": text}))
"""
    result = C.check(C.timed([sys.executable, "-c", code, "1" if profile else "0"], env), "in-process run-due")
    data = json.loads(result.stdout)
    if data["failures"]:
        raise SystemExit(f"in-process run-due had {data['failures']} failure(s)")
    return data["wall"], data["cpu"], data["profile"]


def main() -> None:
    n_accounts = C.env_int("ACCOUNTS", 2000)
    n_dests = C.env_int("DESTINATIONS", 3)
    history = C.env_int("HISTORY", 8)
    profile = os.environ.get("PROFILE") == "1"
    pairs = n_accounts * n_dests
    base = Path(tempfile.mkdtemp(prefix="jabali-bench-rundue-"))
    try:
        print(f"{n_accounts} accounts x {n_dests} destinations = {pairs} pairs, {history} earlier backups each;"
              f" restic stubbed ({HERE / 'stub_restic.sh'})", flush=True)
        t0 = time.monotonic()
        env = setup(base / "a", n_accounts, n_dests, history)
        env_b = setup(base / "b", n_accounts, n_dests, history)
        print(f"catalogs built in {time.monotonic() - t0:.0f} s", flush=True)
        (base / "calibrate").mkdir()
        shutil.copy(HERE / "stub_restic.sh", base / "calibrate" / "restic")
        (base / "calibrate" / "restic").chmod(0o755)
        per_call = stub_cost(base / "calibrate" / "restic", base / "a" / "home")
        print(f"stub call as seen from Python: {per_call * 1000:.2f} ms", flush=True)

        run_env = dict(env, JABALI_NOW=iso(RUN_AT))
        result = C.check(C.timed(C.jabali_argv("run-due", "--json"), run_env), "jabali run-due")
        report = json.loads(result.stdout)
        failed = [i for i in report["items"] if not i["ok"]]
        if failed:
            raise SystemExit(f"run-due reported failures: {failed[:3]}")
        calls = (base / "a" / "stub-calls.log").read_text().split()
        by_kind = {k: calls.count(k) for k in sorted(set(calls))}
        snaps = count(env, f"SELECT COUNT(*) FROM snapshots WHERE time >= '{iso(RUN_AT)[:10]}'")
        copies = count(env, "SELECT COUNT(*) FROM backup_copies")
        own = result.wall - len(calls) * per_call

        wall_b, cpu_b, prof = in_process(dict(env_b, JABALI_NOW=iso(RUN_AT)), profile)
        calls_b = len((base / "b" / "stub-calls.log").read_text().split())
        own_b = wall_b - calls_b * per_call

        print()
        print(f"run-due: {pairs} pairs ({n_accounts} accounts x {n_dests} destinations), restic stubbed;"
              f" stub calls: {', '.join(f'{k} {v}' for k, v in by_kind.items())};"
              f" new snapshots catalogued {snaps}, copies kept {copies}")
        rows = [
            ["run-due wall time, s", result.wall, wall_b],
            ["  minus stub calls x stub cost, s", own, own_b],
            ["jabali per pair (wall - stubs), ms", own / pairs * 1000, own_b / pairs * 1000],
            ["jabali CPU per pair (RUSAGE_SELF), ms", "-", cpu_b / pairs * 1000],
            ["whole run-due per pair incl. stubs, ms", result.wall / pairs * 1000, wall_b / pairs * 1000],
        ]
        print(C.table(rows, ["", "jabali run-due (CLI)", "in-process"]))
        print(f"stub cost {per_call * 1000:.2f} ms/call; target: jabali <= 10 ms per pair")
        if prof:
            print("\ncProfile of the in-process run:\n" + prof)
    finally:
        if os.environ.get("KEEP") == "1":
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
