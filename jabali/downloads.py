"""Backup Download: a fresh backup of the account, handed over as one compressed tar the tenant can read.

The archive is streamed from restic (`restic dump --archive tar` of the files snapshot, `restic dump` of
each database stream) straight into the .tar.gz: no second full copy on disk. Archives live in
`<download dir>/<user>/` (the directory owned by the user) and expire; run-due deletes expired ones.
"""

from __future__ import annotations

import os
import tarfile
from datetime import timedelta
from pathlib import Path

from . import accounts, backups, clock, restic, restore_run, sandbox, settings
from .app import App
from .components import dumps
from .errors import Conflict, OperationFailed
from .progress import Progress
from .store import DownloadRow


def _user_dir(user: str) -> Path:
    base = settings.load().download_dir
    base.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(base, 0o711)  # tenants may pass through, not list
    uid, gid = sandbox.ids(user)
    path = base / user
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise OperationFailed(f"{path} is not a directory")
    if st.st_uid != uid:
        os.chown(path, uid, gid)
    return path


def create(app: App, user: str, progress: Progress | None = None) -> DownloadRow:
    """Back the account up now, then write the archive; return its record (path, size, expiry)."""
    account = accounts.get_account(app, user)
    outcome = backups.backup_now(app, user, [], progress=progress)
    good = [c for c in outcome.copies if c.status in ("ok", "warning")]
    if not good:
        raise OperationFailed(f"the fresh backup of {user} failed; no archive made (see `jabali events list`)")
    src = restore_run.source_for(app, account, outcome.backup_id, good[0].destination_id)
    uid, gid = sandbox.ids(user)
    path = _user_dir(user) / f"{user}-backup-{outcome.backup_id}.tar.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            # Through the open file, never by name: the directory is the tenant's, who may swap the name for
            # a symlink while the archive is written (chown/stat by path would follow it).
            os.fchown(raw.fileno(), uid, gid)
            with tarfile.open(fileobj=raw, mode="w|gz") as out:
                _add_files(src, out)
                for engine in ("mysql", "postgres"):
                    if engine in src.snapshots:
                        _add_stream(src, engine, out)
            raw.flush()
            size = os.fstat(raw.fileno()).st_size
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    hours = settings.load().download_expire_hours
    expires = clock.iso(clock.now() + timedelta(hours=hours))
    older = app.store.downloads(user)
    did = app.store.insert_download(user, outcome.backup_id, str(path), size, expires)
    # One live archive per account: a new one supersedes the old (bounds the disk a tenant can fill).
    for row in older:
        _delete(app, row)
    return next(d for d in app.store.downloads(user) if d.id == did)


def check_tenant_rate(app: App, user: str) -> None:
    """Tenants may start a download (a full backup plus an archive) at most once per interval."""
    minutes = settings.load().download_min_interval_minutes
    recent = [d for d in app.store.downloads(user)
              if clock.parse(d.created_at) > clock.now() - timedelta(minutes=minutes)]
    if recent:
        raise Conflict(
            f"a download was made at {recent[-1].created_at} ({recent[-1].path}); a new one is possible"
            f" {minutes:g} minutes after it"
        )


def _delete(app: App, row: DownloadRow) -> None:
    try:
        os.unlink(row.path)  # unlink never follows a symlink
    except FileNotFoundError:
        pass
    app.store.mark_download_deleted(row.id)


def _add_files(src: restore_run.Source, out: tarfile.TarFile) -> None:
    snap = src.snapshots["files"]
    with restic.popen(src.repo, ["dump", "--archive", "tar", snap.snapshot_id, "/"]) as dump:
        assert dump.stdout is not None
        with tarfile.open(fileobj=dump.stdout, mode="r|") as archive:
            for member in archive:
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)
        dump.stdout.close()
        if dump.wait() != 0:
            raise OperationFailed("restic dump of the files snapshot failed")


def _add_stream(src: restore_run.Source, engine: str, out: tarfile.TarFile) -> None:
    snap = src.snapshots[engine]
    name = "/" + dumps.STDIN_NAMES[engine]
    nodes = restic.run(src.repo, ["ls", "--json", snap.snapshot_id, name]).json_lines()
    size = next((int(n.get("size") or 0) for n in nodes if n.get("path") == name), None)
    if size is None:
        raise OperationFailed(f"{engine} dump not found in snapshot {snap.snapshot_id[:8]}")
    info = tarfile.TarInfo(f"databases/{dumps.STDIN_NAMES[engine]}")
    info.size = size
    info.mode = 0o600
    info.mtime = int(clock.now().timestamp())
    with restic.popen(src.repo, ["dump", snap.snapshot_id, name]) as dump:
        assert dump.stdout is not None
        out.addfile(info, dump.stdout)
        dump.stdout.close()
        if dump.wait() != 0:
            raise OperationFailed(f"restic dump of the {engine} stream failed")


def expire(app: App) -> list[DownloadRow]:
    """Delete archives past their expiry (unlink never follows a symlink); return them."""
    now = clock.iso(clock.now())
    gone = []
    for row in app.store.downloads():
        if row.expires_at <= now:
            _delete(app, row)
            gone.append(row)
    return gone
