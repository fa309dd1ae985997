"""Wall time of `jabali backup USER --destination D` against the fewest bare commands an expert would type for
the same account, on the same data, with the same restic, each into a fresh local repository:

    restic backup HOME ZONE CRONTAB
    mariadb-dump ... --databases SHOP BLOG | restic backup --stdin --stdin-filename mysql.sql
    pg_dump ... APP | restic backup --stdin --stdin-filename postgres.sql

(password from a file on both sides: jabali hands it over on a pipe, the bare commands read a file; the same
dump options on both sides.) Each repetition backs both sides up in full, changes the account a little
(50 files appended to, one new file, 1000 new rows), then backs both up again (incremental). The order of
the two sides alternates between repetitions. Prints the median of each and the ratio jabali / bare.

    python bench/backup_vs_restic.py            # ~300 MiB home, ~95 MiB of databases, 5 repetitions
    SIZE=0.2 REPS=2 python bench/backup_vs_restic.py   # scaled down for a quick look

Environment: SIZE (scale factor, default 1), REPS (default 5), KEEP=1 keeps the temp dir.
Needs root, restic, MariaDB and PostgreSQL server binaries (scripts/install-deps.sh).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MIB = 1 << 20
HOST = "bench-host"


# ------------------------------------------------------------------------------------------------ the account
def build(base: Path, mariadb, postgres, scale: float):
    import account_data

    user = f"jbb{secrets.token_hex(3)[:5]}"
    acc = account_data.build_account(base, user, mariadb=mariadb, postgres=postgres)
    rnd = random.Random(f"bench-{user}")
    corpus = _corpus(rnd)
    home_files = _bulk_home(acc.home, rnd, corpus, scale)
    mails = _bulk_maildir(acc.mail_dir, rnd, corpus, scale)
    account_data._chown_all(acc.home, acc.uid, acc.gid)
    _bulk_databases(acc, mariadb, postgres, scale)
    return acc, home_files, mails


def _corpus(rnd: random.Random) -> bytes:
    """4 MiB of text-like bytes (compresses ~3x, like source code and HTML)."""
    words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz_", k=rnd.randint(2, 10))) for _ in range(3000)]
    punct = [b" ", b" ", b" ", b"(", b");\n", b" = ", b", ", b"\n    ", b"<div class=\"", b"\">", b"</div>\n"]
    parts, size = [], 0
    while size < 4 * MIB:
        piece = rnd.choice(words) + rnd.choice(punct)
        parts.append(piece)
        size += len(piece)
    return b"".join(parts)


def _bulk_home(home: Path, rnd: random.Random, corpus: bytes, scale: float) -> int:
    """~150 MiB of small files (0.5-12 KiB, text-like) in a web-app-like tree, ~130 MiB of large
    incompressible files (media, archives), times scale."""
    count = 0
    small_total = int(150 * MIB * scale)
    written = 0
    root = home / "public_html" / "wp-content"
    while written < small_total:
        d = root / f"plugin-{count // 400:03d}" / f"dir-{(count // 40) % 10}"
        if count % 40 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(512, 12 * 1024)
        start = rnd.randrange(0, len(corpus) - size)
        data = f"<?php /* file {count} */\n".encode() + corpus[start:start + size]
        (d / f"file-{count:06d}.php").write_bytes(data)
        written += len(data)
        count += 1
    media = home / "public_html" / "uploads" / "media"
    media.mkdir(parents=True, exist_ok=True)
    large_total = int(130 * MIB * scale)
    for n in range(8):
        (media / f"video-{n}.mp4").write_bytes(rnd.randbytes(large_total // 8))
        count += 1
    return count


def _bulk_maildir(mail_dir: Path, rnd: random.Random, corpus: bytes, scale: float) -> int:
    cur = mail_dir / ".Archive" / "cur"
    for sub in ("cur", "new", "tmp"):
        (mail_dir / ".Archive" / sub).mkdir(parents=True, exist_ok=True)
    count = max(1, int(3000 * scale))
    for n in range(count):
        size = rnd.randint(1024, 8 * 1024)
        start = rnd.randrange(0, len(corpus) - size)
        body = (f"From: sender{n}@example.org\nSubject: archived message {n}\nMessage-ID: <{n}@bench>\n\n").encode()
        (cur / f"{1600000000 + n}.M{n}P1.bench,S={size}:2,S").write_bytes(body + corpus[start:start + size])
    return count


def _bulk_databases(acc, mariadb, postgres, scale: float) -> None:
    """About 30 + 20 MiB in the two MariaDB databases and 30 MiB in the PostgreSQL one (times scale), as
    hex-ish text rows (random-looking, compressible ~2x)."""
    import account_data

    for db, mib in zip(acc.mysql_databases, (30, 20)):
        rows = max(1, int(mib * MIB * scale / 520))
        account_data._mysql_run(mariadb, f"""
CREATE TABLE bench_log (id INT PRIMARY KEY, at DATETIME NOT NULL, payload TEXT NOT NULL) ENGINE=InnoDB;
INSERT INTO bench_log SELECT seq, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND,
  CONCAT_WS(' ', SHA2(seq * 4, 512), SHA2(seq * 4 + 1, 512), SHA2(seq * 4 + 2, 512), SHA2(seq * 4 + 3, 256))
  FROM seq_1_to_{rows};
ANALYZE TABLE bench_log;
""", db)
    rows = max(1, int(30 * MIB * scale / 520))
    account_data._psql(postgres, f"""
CREATE TABLE bench_events (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload text NOT NULL);
INSERT INTO bench_events SELECT n, '2024-01-01'::timestamptz + n * interval '1 second',
  md5((n * 16)::text) || md5((n * 16 + 1)::text) || md5((n * 16 + 2)::text) || md5((n * 16 + 3)::text)
  || md5((n * 16 + 4)::text) || md5((n * 16 + 5)::text) || md5((n * 16 + 6)::text) || md5((n * 16 + 7)::text)
  || md5((n * 16 + 8)::text) || md5((n * 16 + 9)::text) || md5((n * 16 + 10)::text) || md5((n * 16 + 11)::text)
  || md5((n * 16 + 12)::text) || md5((n * 16 + 13)::text) || md5((n * 16 + 14)::text) || md5((n * 16 + 15)::text)
  FROM generate_series(1, {rows}) AS n;
""", acc.pg_databases[0])


def mutate(acc, mariadb, rep: int) -> None:
    """A day's worth of change: 50 files appended to, one new 256 KiB file, 1000 new rows."""
    import account_data

    files = sorted((acc.home / "public_html" / "wp-content").rglob("*.php"))
    for f in files[rep * 7::max(1, len(files) // 50)][:50]:
        with f.open("ab") as fh:
            fh.write(f"// changed in round {rep}\n".encode())
    (acc.home / "public_html" / "uploads" / f"new-{rep}.bin").write_bytes(os.urandom(256 * 1024))
    start = 10_000_000 + rep * 1000
    account_data._mysql_run(mariadb, f"INSERT INTO bench_log SELECT seq, NOW(), SHA2(seq, 512) "
                                     f"FROM seq_{start}_to_{start + 999}", acc.mysql_databases[0])


# -------------------------------------------------------------------------------------------------- the sides
class Jabali:
    name = "jabali"

    def __init__(self, work: Path, acc, mariadb, postgres, restic: Path) -> None:
        self.work = work
        self.user = acc.user
        config = work / "jabali.conf"
        C.write_config(config, mariadb, postgres, acc.crontab_dir, HOST)
        self.env = C.jabali_env(work / "state", work / "master.key", config, JABALI_RESTIC=str(restic))
        self.n = 0
        args = ["account", "create", acc.user, "--home", str(acc.home), "--mail-dir", str(acc.mail_dir)]
        for db in acc.mysql_databases:
            args += ["--database", db]
        for db in acc.pg_databases:
            args += ["--pg-database", db]
        for zone in acc.zone_files:
            args += ["--zone-file", str(zone)]
        C.check(C.timed(C.jabali_argv(*args), self.env), "jabali account create")

    def fresh_repo(self) -> None:
        self.n += 1
        self.dest = f"bench{self.n}"
        repo = self.work / f"repo-jabali-{self.n}"
        C.check(C.timed(C.jabali_argv("destination", "create", "--type", "local", "--name", self.dest,
                                      "--path", str(repo)), self.env), "jabali destination create")
        C.check(C.timed(C.jabali_argv("destination", "test", self.dest), self.env), "jabali destination test")
        self.repo = repo

    def backup(self) -> C.Timed:
        result = C.check(C.timed(C.jabali_argv("backup", self.user, "--destination", self.dest, "--json"), self.env),
                         "jabali backup")
        status = json.loads(result.stdout)["status"]
        if status != "ok":
            raise SystemExit(f"jabali backup status {status}: {result.stdout.decode()}")
        return result

    def drop_repo(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)


class Bare:
    name = "bare restic"

    def __init__(self, work: Path, acc, mariadb, postgres, restic: Path) -> None:
        self.work = work
        self.restic = restic
        self.password = work / "bare-password"
        self.password.write_text(secrets.token_urlsafe(32) + "\n")
        self.password.chmod(0o600)
        self.cache = work / "bare-cache"
        self.n = 0
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        files = " ".join(_q(str(p)) for p in [acc.home, *acc.zone_files, acc.crontab])
        dump = [mariadb.dump, f"--defaults-file={mariadb.defaults_file}", "--single-transaction", "--quick",
                "--routines", "--triggers", "--events", "--hex-blob", "--databases", *acc.mysql_databases]
        pg = [postgres.tool("pg_dump"), "-h", postgres.socket_dir, "-p", str(postgres.port), "-U", "postgres",
              "--create", "--clean", "--if-exists", *acc.pg_databases]
        r = f"{_q(str(restic))} --cache-dir {_q(str(self.cache))} --password-file {_q(str(self.password))}"
        self.script = "\n".join([
            "set -e -o pipefail",
            f"{r} backup --host {HOST} {files}",
            f"{' '.join(map(_q, dump))} | {r} backup --host {HOST} --stdin --stdin-filename mysql.sql",
            f"{' '.join(map(_q, pg))} | {r} backup --host {HOST} --stdin --stdin-filename postgres.sql",
        ])

    def fresh_repo(self) -> None:
        self.n += 1
        self.repo = self.work / f"repo-bare-{self.n}"
        self.env["RESTIC_REPOSITORY"] = str(self.repo)
        C.check(C.timed([str(self.restic), "--cache-dir", str(self.cache), "--password-file", str(self.password),
                         "init"], self.env), "restic init")

    def backup(self) -> C.Timed:
        return C.check(C.timed(["bash", "-c", self.script], self.env), "bare restic backup")

    def drop_repo(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)


def _q(s: str) -> str:
    import shlex

    return shlex.quote(s)


# ------------------------------------------------------------------------------------------------------- main
def main() -> None:
    C.need_root()
    scale = C.env_float("SIZE", 1.0)
    reps = C.env_int("REPS", 5)
    work = Path(tempfile.mkdtemp(prefix="jabali-bench-backup-", dir="/tmp"))
    work.chmod(0o755)
    mariadb = postgres = acc = None
    t0 = time.monotonic()
    try:
        print(f"starting MariaDB and PostgreSQL, building the account (SIZE={scale}) in {work} ...", flush=True)
        mariadb = C.start_mariadb()
        postgres = C.start_postgres()
        acc, n_files, n_mails = build(work / "account", mariadb, postgres, scale)
        home_mib = C.du_bytes(acc.home) / MIB
        sizes = {db: _mysql_size(mariadb, db) for db in acc.mysql_databases}
        pg_size = _pg_size(postgres, acc.pg_databases[0])
        print(f"account {acc.user}: home {home_mib:.0f} MiB on disk ({n_files} bulk files, {n_mails} archived mails),"
              f" MariaDB {', '.join(f'{d} {s:.0f} MiB' for d, s in sizes.items())}, PostgreSQL {pg_size:.0f} MiB"
              f" (built in {time.monotonic() - t0:.0f} s)", flush=True)

        restic, log = C.counting_restic(work)
        sides = [Jabali(work, acc, mariadb, postgres, restic), Bare(work, acc, mariadb, postgres, restic)]
        # side -> phase -> [(wall, seconds inside restic processes, cpu)]
        results: dict[str, dict[str, list[tuple[float, float, float]]]] = {s.name: {"full": [], "incr": []} for s in sides}
        procs: dict[str, list[str]] = {}
        for rep in range(reps):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side in order:
                side.fresh_repo()
            for phase in ("full", "incr"):
                if phase == "incr":
                    mutate(acc, mariadb, rep)
                for side in order:
                    log.unlink(missing_ok=True)
                    result = side.backup()
                    calls = C.restic_calls(log)
                    inside = _union(calls)
                    results[side.name][phase].append((result.wall, inside, result.cpu))
                    procs[side.name] = [c.command for c in calls]
                    detail = ", ".join(f"{c.command} {c.end - c.start:.2f}" for c in calls)
                    print(f"  round {rep + 1}/{reps} {phase:4} {side.name:11} {result.wall:6.2f} s wall,"
                          f" {result.wall - inside:5.2f} s outside restic, {result.cpu:6.2f} s cpu | {detail}",
                          flush=True)
            for side in sides:
                side.drop_repo()

        j, b = (results[s.name] for s in sides)
        rows = []
        for phase, label in (("full", "first backup (full)"), ("incr", "second backup (incremental)")):
            jm, bm = C.median([r[0] for r in j[phase]]), C.median([r[0] for r in b[phase]])
            rows.append([f"{label}: wall s (median)", jm, bm, f"{jm / bm:.3f}"])
            jb, bb = min(r[0] for r in j[phase]), min(r[0] for r in b[phase])
            rows.append(["  wall s, best run", jb, bb, f"{jb / bb:.3f}"])
            jo = C.median([r[0] - r[1] for r in j[phase]])
            bo = C.median([r[0] - r[1] for r in b[phase]])
            rows.append(["  of which outside restic processes, s", jo, bo, f"{jo - bo:+.3f} s"])
            jc, bc = C.median([r[2] for r in j[phase]]), C.median([r[2] for r in b[phase]])
            rows.append(["  cpu (user+sys, all processes), s", jc, bc, f"{jc / bc:.3f}"])
        rows.append(["restic processes per backup", len(procs["jabali"]), len(procs["bare restic"]),
                     f"{len(procs['jabali']) - len(procs['bare restic']):+d}"])
        print()
        print(f"backup of one account: home {home_mib:.0f} MiB ({n_files + 30} files) + Maildir, "
              f"2 MariaDB dbs ({sum(sizes.values()):.0f} MiB), 1 PostgreSQL db ({pg_size:.0f} MiB); "
              f"local repository, restic {_restic_version()}, median of {reps}")
        print(C.table(rows, ["", "jabali", "bare restic", "jabali/bare"]))
        print(f"restic processes: jabali {' + '.join(procs['jabali'])}; bare {' + '.join(procs['bare restic'])}")
        print("target: wall ratio <= 1.05")
    finally:
        import account_data

        if acc is not None:
            try:
                account_data.drop_account_databases(acc, mariadb, postgres)
            except Exception:
                pass
            account_data.remove_account_user(acc.user)
        C.stop_mariadb(mariadb)
        C.stop_postgres(postgres)
        if os.environ.get("KEEP") == "1":
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _union(calls) -> float:
    """Seconds covered by at least one restic process."""
    total, end = 0.0, 0.0
    for c in sorted(calls, key=lambda c: c.start):
        if c.end > end:
            total += c.end - max(c.start, end)
            end = c.end
    return total


def _mysql_size(mariadb, db: str) -> float:
    out = mariadb.sql("SELECT SUM(data_length + index_length) FROM information_schema.tables"
                      f" WHERE table_schema = '{db}'")
    return float(out.strip() or 0) / MIB


def _pg_size(postgres, db: str) -> float:
    return float(postgres.sql(f"SELECT pg_database_size('{db}')").strip()) / MIB


def _restic_version() -> str:
    out = subprocess.run([C.RESTIC, "version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


if __name__ == "__main__":
    main()
