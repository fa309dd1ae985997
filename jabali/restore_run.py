"""Executing a restore: from one backup (a group of snapshots on one destination) back into the account,
in place or into a staging directory.

In place: files and mailboxes are extracted by `tar` running AS THE TENANT from `restic dump`'s tar stream
(no root file operation in the tenant's tree); each database is dropped and recreated by replaying its own
section of the engine's dump stream; zone files and the crontab are replaced atomically by root in their
operator-configured locations. Before that, a pre-restore backup of the same components is taken, so the
restore can be undone. Staging writes everything under `<parent>/<user>-restore-<timestamp>/`, owned by the
account, and touches nothing live.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import clock, destination_ops, restic, sandbox, settings
from .app import App
from .components import dumps
from .engine import dump_env
from .errors import InvalidInput, NotFound, OperationFailed
from .restic import Repository, ResticError
from .store import AccountRow, DestinationRow, SnapshotRow

ENGINE_CLIENT_TIMEOUT = 6 * 3600


@dataclass
class Source:
    account: AccountRow
    backup_id: str
    dest: DestinationRow
    repo: Repository
    snapshots: dict[str, SnapshotRow]
    components: dict[str, list[str]]  # logical component -> source paths at backup time
    databases: dict[str, list[str]]


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    staging_dir: str | None = None
    undo_backup_id: str | None = None

    def message(self) -> str:
        parts = [f"restored {', '.join(self.done) or 'nothing'}"] + self.errors
        if self.staging_dir:
            parts.append(f"into {self.staging_dir}")
        return "; ".join(parts)


def source_for(app: App, account: AccountRow, backup_id: str, destination_id: int | None = None) -> Source:
    """Given a backup id of the account, pick the destination to restore from (the one named, else the first
    with a complete copy) and what the backup holds."""
    copies = [c for c in app.store.copies(backup_id=backup_id) if c.account == account.user]
    if destination_id is not None:
        copies = [c for c in copies if c.destination_id == destination_id]
    if not copies:
        raise NotFound(f"backup {backup_id!r} of account {account.user!r} not found")
    copies.sort(key=lambda c: (c.status not in ("ok", "warning"), c.destination_id))
    copy = copies[0]
    dest = destination_ops.get(app, str(copy.destination_id))
    repo = destination_ops.repository_for(app, dest)
    snaps = {s.component: s for s in app.store.snapshots_of(backup_id, dest.id)}
    detail = app.store.backup_detail(backup_id) or _detail_from_manifest(repo, snaps)
    return Source(account, backup_id, dest, repo, snaps, detail.get("components", {}), detail.get("databases", {}))


def _detail_from_manifest(repo: Repository, snaps: dict[str, SnapshotRow]) -> dict[str, Any]:
    """A backup found by `snapshot sync` has no local detail: read the manifest stored in its files snapshot."""
    import json

    files = snaps.get("files")
    manifest = next((p for p in files.paths if p.endswith("jabali-manifest.json")), None) if files else None
    if manifest is None:
        return {"components": {}, "databases": {}}
    data = restic.run(repo, ["dump", files.snapshot_id, manifest]).stdout
    doc = json.loads(data)
    return {"components": doc.get("components", {}), "databases": doc.get("databases", {})}


def check_paths(paths: list[str]) -> list[str]:
    """Relative paths inside the account's home: no '..', no NUL or newline; a leading '/' is dropped."""
    out = []
    for raw in paths:
        if not raw or "\x00" in raw or "\n" in raw:
            raise InvalidInput("--path", "must be a non-empty path without newlines")
        rel = PurePosixPath(raw.lstrip("/"))
        if ".." in rel.parts or str(rel) in ("", "."):
            raise InvalidInput("--path", f"{raw!r} must stay inside the home directory (no '..')")
        out.append(str(rel))
    return out


def _member(src: str) -> str:
    return src.lstrip("/")


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _extract(src: Source, snapshot: SnapshotRow, src_dir: str, dest_dir: Path, members: list[str],
             excludes: list[str]) -> None:
    """Stream `restic dump` of src_dir into `tar -x` running as the account, into dest_dir."""
    strip = len(PurePosixPath(src_dir).parts) - 1
    argv = sandbox.tar_extract_argv(dest_dir, strip, members, excludes)
    tar = sandbox.popen_as(src.account.user, argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert tar.stdin is not None and tar.stderr is not None
    with restic.popen(src.repo, ["dump", snapshot.snapshot_id, src_dir], stdout=tar.stdin) as dump:
        tar.stdin.close()
        _, dump_err = dump.communicate(timeout=ENGINE_CLIENT_TIMEOUT)
    tar_err = tar.stderr.read().decode(errors="replace")
    tar.wait()
    if dump.returncode != 0:
        lines = dump_err.decode(errors="replace").strip().splitlines() or [f"restic dump exited {dump.returncode}"]
        raise OperationFailed(src.repo.redact(lines[-1][:300]))
    if tar.returncode != 0:
        raise OperationFailed("; ".join(tar_err.strip().splitlines()[-3:])[:500] or f"tar exited {tar.returncode}")


def _listing(src: Source, snapshot: SnapshotRow, src_dir: str) -> list[dict[str, Any]]:
    # --recursive: with a directory argument, restic ls lists only that directory's direct children.
    res = restic.run(src.repo, ["ls", "--json", "--recursive", snapshot.snapshot_id, src_dir])
    return [n for n in res.json_lines() if n.get("struct_type") == "node" and _inside(n["path"], src_dir)]


def _relative(nodes: list[dict[str, Any]], src_dir: str) -> list[str]:
    return [os.path.relpath(n["path"], src_dir) for n in nodes if n["path"] != src_dir]


def restore_tree(src: Source, component: str, dest_dir: Path, paths: list[str], *, mirror: bool,
                 in_place: bool) -> None:
    """Restore `files` (home without the Maildir) or `mailboxes` into dest_dir, as the tenant."""
    sources = src.components.get(component) or []
    snapshot = src.snapshots.get("files")
    if not sources or snapshot is None:
        raise OperationFailed(f"the backup has no {component}")
    src_dir = sources[0]
    excludes = []
    mail = (src.components.get("mailboxes") or [None])[0]
    if component == "files" and mail and _inside(mail, src_dir):
        excludes.append(_member(mail))
    members = [f"{_member(src_dir)}/{p}" for p in paths]
    nodes = _listing(src, snapshot, src_dir) if (mirror or (component == "mailboxes" and in_place)) else []
    if component == "mailboxes" and in_place:
        messages = [r for r in _relative(nodes, src_dir) if PurePosixPath(r).parent.name in ("cur", "new")]
        sandbox.run_script_as(src.account.user, "maildir-dedupe", dest_dir, {"messages": messages})
    if mirror:
        # Prune first: removing entries after tar would leave their directories with new mtimes.
        skip = [os.path.relpath(mail, src_dir)] if component == "files" and mail and _inside(mail, src_dir) else []
        sandbox.run_script_as(src.account.user, "prune", dest_dir, {"keep": _relative(nodes, src_dir), "skip": skip})
    _extract(src, snapshot, src_dir, dest_dir, members, excludes)


def _dump_file(src: Source, path: str) -> bytes:
    snapshot = src.snapshots["files"]
    return restic.run(src.repo, ["dump", snapshot.snapshot_id, path]).stdout


def restore_dns(src: Source, staging: Path | None) -> None:
    zones = src.components.get("dns") or []
    live = set(src.account.config.get("zone_files", []))
    for zone in zones:
        data = _dump_file(src, zone)
        if staging is not None:
            (staging / "dns").mkdir(mode=0o700, exist_ok=True)
            (staging / "dns" / PurePosixPath(zone).name).write_bytes(data)
            continue
        if zone not in live:
            raise OperationFailed(f"zone file {zone} is no longer configured for the account; not written back")
        path = Path(zone)
        st = path.stat() if path.exists() else None
        sandbox.write_root_file(path, data, st.st_mode & 0o7777 if st else 0o644, st.st_uid if st else 0,
                                st.st_gid if st else 0)
    reload = settings.load().dns_reload
    if staging is None and zones and reload:
        proc = subprocess.run(shlex.split(reload), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise OperationFailed(f"zones written, but `{reload}` failed: {proc.stderr.strip()[-200:]}")


def restore_cron(src: Source, staging: Path | None) -> None:
    sources = src.components.get("cron") or []
    if not sources:
        raise OperationFailed("the backup has no crontab")
    data = _dump_file(src, sources[0])
    if staging is not None:
        (staging / "cron").mkdir(mode=0o700, exist_ok=True)
        (staging / "cron" / "crontab").write_bytes(data)
        return
    from . import accounts

    path = accounts.crontab_path(src.account)
    conf = settings.load()
    uid, gid = sandbox.ids(src.account.user)
    if path.parent == conf.crontab_dir and conf.crontab_dir == Path("/var/spool/cron/crontabs") and \
            subprocess.run(["which", "crontab"], capture_output=True).returncode == 0:
        # The system spool: let crontab(1) install it (it validates and notifies cron).
        proc = subprocess.run(["crontab", "-u", src.account.user, "-"], input=data, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise OperationFailed(f"crontab -u {src.account.user}: {proc.stderr.decode(errors='replace').strip()}")
        return
    st = path.stat() if path.exists() else None
    sandbox.write_root_file(path, data, 0o600, uid, st.st_gid if st else gid)


def restore_databases(src: Source, staging: Path | None) -> None:
    conf = settings.load()
    wanted = {"mysql": set(src.account.config.get("databases", [])),
              "postgres": set(src.account.config.get("pg_databases", []))}
    errors = []
    for engine in ("mysql", "postgres"):
        snapshot = src.snapshots.get(engine)
        if snapshot is None:
            continue
        with restic.popen(src.repo, ["dump", snapshot.snapshot_id, "/" + dumps.STDIN_NAMES[engine]]) as dump:
            assert dump.stdout is not None
            chunks = iter(lambda: dump.stdout.read(1 << 20), b"")
            try:
                for sect_engine, database, lines in dumps.split(chunks):
                    if staging is not None:
                        target = staging / "databases" / f"{sect_engine}-{database}.sql"
                        target.parent.mkdir(mode=0o700, exist_ok=True)
                        with open(target, "xb") as out:
                            for line in lines:
                                out.write(line)
                        continue
                    if database not in wanted[engine]:
                        errors.append(f"{engine} database {database} is not the account's any more: skipped")
                        continue
                    _replay(engine, database, lines, conf)
            except dumps.StreamError as exc:
                errors.append(f"{engine}: {exc}")
            finally:
                dump.stdout.close()
                dump.wait()
    if errors:
        raise OperationFailed("; ".join(errors))


def _replay(engine: str, database: str, lines: Any, conf: settings.Settings) -> None:
    """Drop and recreate one database by replaying its section (the section itself drops and creates)."""
    if engine == "mysql":
        # --one-database: statements for any other database are ignored, whatever the dump contains.
        argv = [conf.mysql_client, *conf.mysql_args(), "--binary-mode", "--one-database", database]
    else:
        psql = [conf.pg_tool("psql"), *conf.pg_args(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
        kick = subprocess.run(
            [*psql, "-v", f"db={database}"],
            input=b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  b" WHERE datname = :'db' AND pid <> pg_backend_pid();\n",
            capture_output=True, timeout=120, env=dump_env(),
        )
        if kick.returncode != 0:
            raise OperationFailed(f"cannot disconnect users of {database}: {kick.stderr.decode(errors='replace')[-200:]}")
        argv = psql
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=dump_env()) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        import threading

        err: list[bytes] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
        try:
            for line in lines:
                proc.stdin.write(line)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait(timeout=ENGINE_CLIENT_TIMEOUT)
        reader.join()
    if proc.returncode != 0:
        text = b"".join(err).decode(errors="replace").strip().splitlines()
        raise OperationFailed(f"{engine} restore of {database} failed: {text[-1][:300] if text else proc.returncode}")


def staging_dir(user: str) -> Path:
    parent = settings.load().staging_parent
    st = os.lstat(parent)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        # A tenant who can write the parent could race root's writes into the new staging directory.
        raise OperationFailed(f"staging parent {parent} must be a root-owned directory not writable by others")
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    path = parent / f"{user}-restore-{stamp}"
    n = 1
    while path.exists() or path.is_symlink():
        n += 1
        path = parent / f"{user}-restore-{stamp}-{n}"
    return path


def run(app: App, src: Source, components: list[str], target: str, paths: list[str], *,
        mirror: bool = False, pre_restore: bool = True) -> Outcome:
    """Restore the chosen components of `src` in place or to staging; return what was done and what failed."""
    outcome = Outcome()
    account = src.account
    uid, gid = sandbox.ids(account.user)
    staging = None
    if target == "staging":
        staging = staging_dir(account.user)
        os.mkdir(staging, 0o700)  # root-only while root writes into it
        outcome.staging_dir = str(staging)
    elif pre_restore:
        from .backups import pre_restore_backup

        outcome.undo_backup_id = pre_restore_backup(app, account, src.dest, set(components))
    root_parts = [c for c in ("dns", "cron", "databases") if c in components]
    for component in root_parts:
        try:
            {"dns": restore_dns, "cron": restore_cron, "databases": restore_databases}[component](src, staging)
            outcome.done.append(component)
        except (OperationFailed, ResticError, OSError) as exc:
            outcome.errors.append(f"{component}: {exc}")
    if staging is not None:
        for sub in ("files", "mailboxes"):
            if sub in components:
                (staging / ("home" if sub == "files" else "Maildir")).mkdir(mode=0o700)
        for top, dirs, files in os.walk(staging):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), uid, gid)
        os.chown(staging, uid, gid)  # from here on, root writes nothing more in it
    for component in ("files", "mailboxes"):
        if component not in components:
            continue
        if staging is not None:
            dest = staging / ("home" if component == "files" else "Maildir")
        else:
            dest = Path(account.config["home"] if component == "files" else account.config.get("mail_dir") or "")
            if not str(dest) or not dest.is_dir():
                outcome.errors.append(f"{component}: live directory {dest} does not exist")
                continue
        try:
            restore_tree(src, component, dest, paths if component == "files" else [], mirror=mirror,
                         in_place=staging is None)
            outcome.done.append(component)
        except (OperationFailed, ResticError) as exc:
            outcome.errors.append(f"{component}: {exc}")
    return outcome
