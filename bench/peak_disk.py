"""Peak EXTRA local disk used while backing up an account with a large MariaDB database (~1 GiB), not counting
the repository's own growth: jabali (`jabali backup USER --destination D`) against the bare pipeline
(`mariadb-dump ... | restic backup --stdin`).

Everything either side writes locally lives on one dedicated filesystem (a loop-mounted ext4 image, so other
processes on the host do not disturb the numbers): the repository, jabali's state directory (catalog,
restic cache, manifests), the bare side's restic cache, and TMPDIR of both sides (restic assembles pack files
in TMPDIR). While a backup runs, a thread samples the filesystem's used space (statvfs) and the repository's
size (du) every few milliseconds; the extra disk is

    (used - used at start) - (repository size - repository size at start)

and the table shows its maximum. A sample counts only if the repository size did not change while it was
taken (du before and after statvfs agree).

    python bench/peak_disk.py            # ~1 GiB database
    SIZE=128 python bench/peak_disk.py   # database size in MiB, for a quick run

Environment: SIZE (MiB, default 1024), KEEP=1 keeps the temp dir. Needs root (mount, useradd, MariaDB).
If a loop mount is not possible it falls back to a plain directory under /tmp and says the numbers may
include other processes' writes.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MIB = 1 << 20
HOST = "bench-host"
DB = "jbbench_big"


def make_database(mariadb, size_mib: int) -> float:
    """InnoDB table of ~size_mib MiB of hex text (SHA-512 digests: random-looking, compresses ~2x)."""
    mariadb.sql(f"DROP DATABASE IF EXISTS {DB}")
    mariadb.sql(f"CREATE DATABASE {DB}")
    mariadb.sql("CREATE TABLE blobs (id INT PRIMARY KEY, payload TEXT NOT NULL) ENGINE=InnoDB", DB)
    rows = size_mib * 1024  # 1 KiB per row
    step = 128 * 1024
    digests = ", ".join(f"SHA2(seq * 8 + {k}, 512)" for k in range(8))
    for first in range(1, rows + 1, step):
        last = min(rows, first + step - 1)
        mariadb.sql(f"INSERT INTO blobs SELECT seq, CONCAT({digests}) FROM seq_{first}_to_{last}", DB)
    return rows * 1024 / MIB


class Filesystem:
    """A loop-mounted ext4 image (or, failing that, a plain directory) holding everything a side writes."""

    def __init__(self, work: Path, size_mib: int) -> None:
        self.image = work / "fs.img"
        self.root = work / "fs"
        self.root.mkdir()
        self.mounted = False
        try:
            with open(self.image, "wb") as f:
                f.truncate(size_mib * MIB)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(self.image), str(self.root)], check=True, capture_output=True)
            self.mounted = True
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
            print(f"note: no loop mount ({detail}); measuring on the /tmp filesystem, which other processes may"
                  " write to at the same time", flush=True)
            self.image.unlink(missing_ok=True)
        self.root.chmod(0o755)

    def used(self) -> int:
        st = os.statvfs(self.root)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.root)], capture_output=True)
            self.mounted = False


class Sampler(threading.Thread):
    def __init__(self, fs: Filesystem, repo: Path, cache: Path) -> None:
        super().__init__(daemon=True)
        self.fs, self.repo, self.cache = fs, repo, cache
        os.sync()
        self.used0 = fs.used()
        self.repo0 = C.du_bytes(repo)
        self.peak = 0
        self.peak_cache = 0
        self.samples = 0
        self.rejected = 0
        self.repo_growth = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            time.sleep(0.005)

    def sample(self) -> None:
        before = C.du_bytes(self.repo)
        used = self.fs.used()
        after = C.du_bytes(self.repo)
        if before != after:
            self.rejected += 1
            return
        self.samples += 1
        self.repo_growth = after - self.repo0
        extra = (used - self.used0) - (after - self.repo0)
        if extra > self.peak:
            self.peak = extra
            self.peak_cache = C.du_bytes(self.cache)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()


def measure(fs: Filesystem, repo: Path, cache: Path, argv: list[str], env: dict[str, str], what: str):
    sampler = Sampler(fs, repo, cache)
    sampler.start()
    try:
        result = C.check(C.timed(argv, env), what)
    finally:
        sampler.stop()
    return result, sampler


def main() -> None:
    C.need_root()
    size = C.env_int("SIZE", 1024)
    work = Path(tempfile.mkdtemp(prefix="jabali-bench-disk-", dir="/tmp"))
    work.chmod(0o755)
    mariadb = fs = None
    user = ""
    try:
        import account_data

        print(f"starting MariaDB, filling {DB} with ~{size} MiB ...", flush=True)
        t0 = time.monotonic()
        mariadb = C.start_mariadb()
        data_mib = make_database(mariadb, size)
        print(f"database: {data_mib:.0f} MiB of row data in {time.monotonic() - t0:.0f} s", flush=True)
        fs = Filesystem(work, 2 * size + 1024)
        root = fs.root

        # jabali: an account whose only large component is the database.
        user = f"jbd{secrets.token_hex(3)[:5]}"
        home = root / "home" / user
        (home / "public_html").mkdir(parents=True)
        (home / "public_html" / "index.php").write_text("<?php echo 'hi';\n")
        account_data.ensure_account_user(user, home)
        tmp = root / "tmp"
        tmp.mkdir(mode=0o1777)
        config = work / "jabali.conf"
        C.write_config(config, mariadb, crontab_dir=work / "crontabs", hostname=HOST)
        state = root / "state"
        env = C.jabali_env(state, work / "master.key", config, TMPDIR=str(tmp))
        C.check(C.timed(C.jabali_argv("account", "create", user, "--home", str(home), "--database", DB), env),
                "jabali account create")
        repo_j = root / "repo-jabali"
        C.check(C.timed(C.jabali_argv("destination", "create", "--type", "local", "--name", "disk", "--path",
                                      str(repo_j)), env), "jabali destination create")
        C.check(C.timed(C.jabali_argv("destination", "test", "disk"), env), "jabali destination test")
        print("backing up with jabali ...", flush=True)
        rj, sj = measure(fs, repo_j, state / "cache", C.jabali_argv("backup", user, "--destination", "disk", "--json"),
                         env, "jabali backup")
        status = json.loads(rj.stdout)["status"]
        if status != "ok":
            raise SystemExit(f"jabali backup: {status}: {rj.stdout.decode()}")
        shutil.rmtree(repo_j)

        # bare: mariadb-dump | restic backup --stdin, same dump options as jabali's.
        repo_b, cache_b = root / "repo-bare", root / "cache-bare"
        password = work / "password"
        password.write_text(secrets.token_urlsafe(32) + "\n")
        renv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "TMPDIR": str(tmp),
                "RESTIC_REPOSITORY": str(repo_b), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        restic = [C.RESTIC, "--cache-dir", str(cache_b), "--password-file", str(password)]
        C.check(C.timed([*restic, "init"], renv), "restic init")
        dump = [mariadb.dump, f"--defaults-file={mariadb.defaults_file}", "--single-transaction", "--quick",
                "--routines", "--triggers", "--events", "--hex-blob", "--databases", DB]
        script = (f"set -e -o pipefail; {shlex.join(dump)} | {shlex.join(restic)} backup --host {HOST} --stdin"
                  " --stdin-filename mysql.sql")
        print("backing up with mariadb-dump | restic backup --stdin ...", flush=True)
        rb, sb = measure(fs, repo_b, cache_b, ["bash", "-c", script], renv, "bare pipeline")

        rows = [
            ["peak extra local disk, MiB", sj.peak / MIB, sb.peak / MIB],
            ["  of which restic cache at that moment, MiB", sj.peak_cache / MIB, sb.peak_cache / MIB],
            ["repository growth, MiB", sj.repo_growth / MIB, sb.repo_growth / MIB],
            ["wall time, s", rj.wall, rb.wall],
            ["samples (rejected while the repository grew)", f"{sj.samples} ({sj.rejected})",
             f"{sb.samples} ({sb.rejected})"],
        ]
        print()
        where = "a dedicated loop-mounted ext4" if fs.mounted else "the /tmp filesystem (shared: noisy)"
        print(f"backup of an account with a {data_mib:.0f} MiB MariaDB database (plus a tiny home) to a local"
              f" repository; repository, state, caches and TMPDIR on {where}")
        print(C.table(rows, ["", "jabali", "mariadb-dump | restic"]))
        print("target: jabali well under 64 MiB (the dump is streamed, never staged on disk)")
    finally:
        import account_data

        if fs is not None:
            fs.close()
        if user:
            account_data.remove_account_user(user)
        C.stop_mariadb(mariadb)
        if os.environ.get("KEEP") == "1":
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
