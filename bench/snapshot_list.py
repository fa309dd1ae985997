"""Process time of `jabali snapshot list --account X [--json]` on a large catalog: 1000 accounts x 2
destinations x 50 backups = 100 000 backup copies (300 000 restic snapshots: files, mysql, postgres),
inserted directly through jabali.store.Store. The reference is plain restic listing one account's snapshots
from a small local repository: `restic snapshots --json --tag account=X`.

CPU = user + sys of the child process (os.wait4), median of RUNS runs; wall time alongside.

    python bench/snapshot_list.py
    ACCOUNTS=100 RUNS=5 python bench/snapshot_list.py     # quick

Environment: ACCOUNTS (1000), BACKUPS (50 per account and destination), RUNS (10), RESTIC_SNAPSHOTS (20: the
reference repository holds this many snapshots for X and as many for another account), KEEP=1 keeps the temp dir.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

COMPONENTS = ("files", "mysql", "postgres")


def build_catalog(work: Path, accounts: int, backups: int) -> dict[str, str]:
    config = work / "jabali.conf"
    C.write_config(config)
    env = C.jabali_env(work / "state", work / "master.key", config)
    code = f"""
import json, secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from jabali.store import BackupCopy, SnapshotRow, Store
Path("{work}/state").mkdir(mode=0o700)
store = Store.open(Path("{work}/state/jabali.db"))
dests = [store.insert_destination(name, "local", {{"path": "/srv/restic/" + name}}) for name in ("local", "offsite")]
pkg = store.insert_package("default", {{}})
start = datetime(2031, 1, 1, 2, 0, tzinfo=timezone.utc)
with store.tx():
    for n in range({accounts}):
        user = f"acct{{n:04d}}"
        home = f"/home/{{user}}"
        store.insert_account(user, pkg, {{"home": home, "mail_dir": None, "crontab": None, "zone_files": [],
                                          "databases": [user + "_wp"], "pg_databases": [user + "_app"]}})
        for day in range({backups}):
            when = start + timedelta(days=day, seconds=n)
            at = when.isoformat(timespec="seconds")
            bid = when.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
            store.start_backup(bid, user, "account_full", at, "nightly")
            store.finish_backup(bid, "ok", None, ["files", "databases", "mailboxes"])
            for dest in dests:
                store.put_copy(BackupCopy(bid, dest, "", user, at, "ok", None, 123456789, 4321,
                                          ["files", "databases", "mailboxes"]))
                for comp, path in (("files", home), ("mysql", "/mysql.sql"), ("postgres", "/postgres.sql")):
                    store.put_snapshot(SnapshotRow(dest, secrets.token_hex(32), bid, comp, at, 4567, 89, [path]))
store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
counts = {{t: store.conn.execute(f"SELECT COUNT(*) FROM {{t}}").fetchone()[0]
          for t in ("backups", "backup_copies", "snapshots")}}
print(json.dumps(counts))
store.close()
"""
    result = C.check(C.timed([sys.executable, "-c", code], env), "building the catalog")
    env["COUNTS"] = result.stdout.decode().strip()
    return env


def build_restic_repo(work: Path, per_account: int) -> tuple[list[str], dict[str, str]]:
    repo, cache, password = work / "restic-repo", work / "restic-cache", work / "restic-password"
    password.write_text(secrets.token_urlsafe(32) + "\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "RESTIC_REPOSITORY": str(repo)}
    base = [C.RESTIC, "--cache-dir", str(cache), "--password-file", str(password)]
    C.check(C.timed([*base, "init"], env), "restic init")
    src = work / "src"
    src.mkdir()
    for n in range(per_account):
        for user in ("acct0042", "acct0043"):
            (src / "index.html").write_text(f"{user} {n}\n")
            C.check(C.timed([*base, "backup", "--host", "panel", "--tag", "jabali", "--tag", f"account={user}",
                             "--tag", f"backup=b{n}", "--tag", "component=files", str(src)], env), "restic backup")
    return base, env


def measure(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, int]:
    C.check(C.timed(argv, env), " ".join(argv[-4:]))  # warm the page cache
    cpu, wall = [], []
    out = b""
    for _ in range(runs):
        r = C.check(C.timed(argv, env), " ".join(argv[-4:]))
        cpu.append(r.cpu)
        wall.append(r.wall)
        out = r.stdout
    return C.median(cpu), C.median(wall), len(out)


def main() -> None:
    accounts = C.env_int("ACCOUNTS", 1000)
    backups = C.env_int("BACKUPS", 50)
    runs = C.env_int("RUNS", 10)
    per_account = C.env_int("RESTIC_SNAPSHOTS", 20)
    work = Path(tempfile.mkdtemp(prefix="jabali-bench-list-"))
    try:
        t0 = time.monotonic()
        env = build_catalog(work, accounts, backups)
        db_mib = (work / "state" / "jabali.db").stat().st_size / (1 << 20)
        print(f"catalog: {env.pop('COUNTS')} ({db_mib:.0f} MiB) built in {time.monotonic() - t0:.0f} s", flush=True)
        t0 = time.monotonic()
        base, renv = build_restic_repo(work, per_account)
        print(f"restic reference repository: {2 * per_account} snapshots built in {time.monotonic() - t0:.0f} s",
              flush=True)

        x = "acct0042"
        cases = [
            (f"jabali snapshot list --account {x}", C.jabali_argv("snapshot", "list", "--account", x), env),
            (f"jabali snapshot list --account {x} --json", C.jabali_argv("snapshot", "list", "--account", x, "--json"), env),
            (f"restic snapshots --json --tag account={x}", [*base, "snapshots", "--json", "--tag", f"account={x}"], renv),
            ("python3 -c pass (interpreter start, for scale)", [sys.executable, "-c", "pass"], env),
        ]
        rows = []
        ref = None
        for label, argv, e in cases:
            cpu, wall, size = measure(argv, e, runs)
            if label.startswith("restic"):
                ref = cpu
            rows.append([label, cpu, wall, size])
        for row in rows:
            row.append(f"{row[1] / ref:.2f}" if ref else "-")
        print()
        print(f"listing one account's backups: jabali catalog of {accounts * 2 * backups} backup copies vs plain"
              f" restic on a {2 * per_account}-snapshot local repository; median of {runs} runs")
        print(C.table(rows, ["command", "cpu s", "wall s", "stdout bytes", "cpu / restic"]))
        print("target: jabali <= 0.15 s process time")
    finally:
        if os.environ.get("KEEP") == "1":
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
