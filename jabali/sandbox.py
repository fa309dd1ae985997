"""Work inside a tenant's tree is done AS the tenant: a child process with the account's uid, gid and no
supplementary groups. A symlink or hardlink the tenant planted (public_html -> /etc) can then only lead
where the tenant could go anyway; jabali never performs a root file operation inside a tenant's tree.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

from .errors import OperationFailed

# Runs under /usr/bin/python3 -I as the tenant (jabali's own install may not be readable by tenants).
_SCRIPT = r'''
import json, os, sys
mode, root = sys.argv[1], sys.argv[2]
spec = json.load(sys.stdin)
removed = 0
if mode == "prune":
    keep = set(spec["keep"])
    skip = tuple(p.rstrip("/") + "/" for p in spec["skip"]) + tuple(spec["skip"])
    for top, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, root)
            if rel in keep or rel.startswith(skip) or rel in spec["skip"]:
                continue
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    if not os.listdir(full):
                        os.rmdir(full)
                        removed += 1
                else:
                    os.unlink(full)
                    removed += 1
            except OSError as exc:
                print(f"cannot remove {rel}: {exc.strerror}", file=sys.stderr)
elif mode == "maildir-dedupe":
    # A message whose flags changed since the snapshot has another file name (":2,FLAGS"): remove the live
    # copy so the restored name (the snapshot's flags) is the only one.
    for rel in spec["messages"]:
        folder, name = os.path.split(rel)
        base = name.split(":2,")[0]
        parent = os.path.dirname(folder)
        for sub in ("cur", "new"):
            d = os.path.join(root, parent, sub)
            try:
                entries = os.listdir(d)
            except OSError:
                continue
            for other in entries:
                if other.split(":2,")[0] == base and os.path.join(parent, sub, other) != rel:
                    try:
                        os.unlink(os.path.join(d, other))
                        removed += 1
                    except OSError:
                        pass
print(removed)
'''


def ids(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise OperationFailed(f"account {user!r} has no Linux user on this host") from None
    if entry.pw_uid == 0:
        raise OperationFailed(f"account {user!r} maps to uid 0; jabali will not act as root inside a tenant tree")
    return entry.pw_uid, entry.pw_gid


def _env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


def popen_as(user: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    uid, gid = ids(user)
    return subprocess.Popen(argv, user=uid, group=gid, extra_groups=[], env=_env(), cwd="/", **kwargs)


def tar_extract_argv(dest: Path, strip: int, members: list[str], excludes: list[str]) -> list[str]:
    argv = ["tar", "-x", "-p", "--no-same-owner", "--delay-directory-restore", "--no-wildcards", "-f", "-",
            "-C", str(dest), f"--strip-components={strip}"]
    argv += [f"--exclude={e}" for e in excludes]
    return argv + (["--", *members] if members else [])


def python() -> str:
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3") or "python3"


def run_script_as(user: str, mode: str, root: Path, spec: dict[str, Any]) -> int:
    """Run the tenant-side helper (prune / maildir-dedupe) as `user`; return how many entries it removed."""
    uid, gid = ids(user)
    proc = subprocess.run(
        [python(), "-I", "-S", "-c", _SCRIPT, mode, str(root)],
        input=json.dumps(spec).encode(), capture_output=True, user=uid, group=gid, extra_groups=[], env=_env(),
        cwd="/", timeout=3600,
    )
    if proc.returncode != 0:
        raise OperationFailed(f"{mode} in {root} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    return int(proc.stdout.strip() or 0)


def write_root_file(path: Path, data: bytes, mode: int, uid: int, gid: int) -> None:
    """Replace `path` (in an operator-configured, root-owned directory such as /etc/bind or the cron spool)
    atomically, never following a symlink: write a new file next to it, then rename over it."""
    tmp = path.with_name(f".{path.name}.jabali-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def copy_stream_to(stream: IO[bytes], path: Path, mode: int = 0o600) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    total = 0
    try:
        while chunk := stream.read(1 << 20):
            os.write(fd, chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return total
