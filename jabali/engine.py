"""One account_full backup: the files snapshot to each destination, then one database stream per engine,
dumped once and fanned out to every destination at the same time; all grouped under one backup id by tags
and recorded in the catalog.

Given the App, an account and its targets, `backup_account` returns a BackupOutcome; it never raises for a
failing destination or dump (those are outcomes, with `backup_failed` events), only for interruptions.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, clock, paths, restic, settings
from .app import App
from .components import dumps
from .components.filesets import FileSet, file_set
from .errors import OperationFailed
from .progress import Progress
from .restic import Repository, ResticError
from .store import AccountRow, BackupCopy, DestinationRow, SnapshotRow

KIND = "account_full"
CHUNK = 1 << 20


@dataclass
class Target:
    dest: DestinationRow
    repo: Repository


@dataclass
class CopyOutcome:
    """The backup on one destination."""

    destination: str
    destination_id: int
    snapshots: list[SnapshotRow] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (component, reason)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.snapshots:
            return "failed"
        if self.failures:
            return "partial"
        return "warning" if self.warnings else "ok"

    @property
    def message(self) -> str:
        parts = [f"{c}: {r}" for c, r in self.failures] + self.warnings
        return "; ".join(parts)[:2000]


@dataclass
class BackupOutcome:
    backup_id: str
    account: str
    copies: list[CopyOutcome]

    @property
    def status(self) -> str:
        states = {c.status for c in self.copies}
        if states <= {"ok"}:
            return "ok"
        if states <= {"ok", "warning"}:
            return "warning"
        if states == {"failed"}:
            return "failed"
        return "partial"


def new_backup_id() -> str:
    return clock.now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def tag_args(account: str, backup_id: str, component: str, expect: Sequence[str], kind: str = KIND) -> list[str]:
    tags = ["jabali", f"account={account}", f"backup={backup_id}", f"component={component}", f"kind={kind}",
            "expect=" + "+".join(expect)]
    return [arg for tag in tags for arg in ("--tag", tag)]


def write_manifest(account: AccountRow, backup_id: str, fs: FileSet, engines: dict[str, list[str]], kind: str) -> None:
    manifest = manifest_path(account.user)
    data = {
        "jabali_version": __version__,
        "restic_version": str(restic.version()),
        "kind": kind,
        "account": account.user,
        "package": account.package,
        "backup_id": backup_id,
        "time": clock.iso(clock.now()),
        "host": settings.load().hostname,
        "components": fs.components,
        "databases": engines,
        "config": account.config,
    }
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(manifest)


def manifest_path(user: str) -> Path:
    # A constant path per account, so restic finds the previous snapshot as parent (fast incrementals).
    return paths.sub_dir("manifests") / user / "jabali-manifest.json"


def backup_account(
    app: App,
    account: AccountRow,
    targets: list[Target],
    *,
    schedule: str | None = None,
    progress: Progress | None = None,
    kind: str = KIND,
    only: set[str] | None = None,
) -> BackupOutcome:
    """Back `account` up to every target. `only` limits it to some logical components (the pre-restore
    snapshot that makes an in-place restore undoable), recorded as `kind`."""
    progress = progress or Progress(False)
    backup_id = new_backup_id()
    started = clock.iso(clock.now())
    app.store.start_backup(backup_id, account.user, kind, started, schedule)
    outcome = BackupOutcome(backup_id, account.user, [CopyOutcome(t.dest.name, t.dest.id) for t in targets])
    try:
        _run(app, account, targets, outcome, started, progress, kind, only)
    except BaseException:
        app.store.finish_backup(backup_id, "failed", "interrupted", [])
        raise
    finally:
        progress.done()
    _record(app, account, outcome, started)
    return outcome


def _run(app: App, account: AccountRow, targets: list[Target], outcome: BackupOutcome, started: str,
         progress: Progress, kind: str, only: set[str] | None) -> None:
    conf = settings.load()
    manifest_path(account.user).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fs = file_set(account, manifest_path(account.user), only)
    engines = {
        "mysql": dumps.mysql_sections(account.config.get("databases", []), conf),
        "postgres": dumps.postgres_sections(account.config.get("pg_databases", []), conf),
    }
    if only is not None and "databases" not in only:
        engines = {}
    engines = {name: sections for name, sections in engines.items() if sections}
    expect = ["files", *engines]
    databases = {e: [s.database for s in ss] for e, ss in engines.items()}
    write_manifest(account, outcome.backup_id, fs, databases, kind)
    app.store.set_backup_detail(outcome.backup_id, {"components": fs.components, "databases": databases,
                                                    "targets": [t.dest.id for t in targets]})
    when = restic.snapshot_time(started)
    for target, copy in zip(targets, outcome.copies):
        progress.step(f"{account.user}: files -> {target.dest.name}")
        _files(target, copy, fs, tag_args(account.user, outcome.backup_id, "files", expect, kind), when,
               conf.hostname, progress)
    for engine, sections in engines.items():
        progress.step(f"{account.user}: {engine} dumps -> {', '.join(t.dest.name for t in targets)}")
        _stream(engine, sections, targets, outcome, tag_args(account.user, outcome.backup_id, engine, expect, kind),
                when, conf.hostname)
    for copy in outcome.copies:
        if engines and {s.component for s in copy.snapshots} >= set(engines):
            copy.components.append("databases")


def _files(target: Target, copy: CopyOutcome, fs: FileSet, tags: list[str], when: str, host: str,
           progress: Progress) -> None:
    args = ["backup", "--json", "--host", host, "--time", when, *tags, *fs.paths]
    try:
        with restic.Running(target.repo, args, on_message=progress.restic_message) as proc:
            result = proc.wait()
            summary, unreadable = proc.summary(), proc.errors()
    except OperationFailed as exc:  # ResticError included; also "cannot start restic"
        copy.failures.append(("files", str(exc)))
        return
    if result.returncode not in (0, 3) or summary is None:
        copy.failures.append(("files", str(restic.error_for(target.repo, result))))
        return
    if result.returncode == 3 or unreadable:
        shown = ", ".join(unreadable[:20]) + (f" and {len(unreadable) - 20} more" if len(unreadable) > 20 else "")
        copy.warnings.append(f"files: {len(unreadable)} item(s) could not be read: {shown}")
    if fs.missing:
        copy.warnings.append("missing (skipped): " + ", ".join(fs.missing))
    copy.snapshots.append(_snapshot_row(target, copy, "files", summary, fs.paths))
    copy.components += [c for c in fs.components]


def _snapshot_row(target: Target, copy: CopyOutcome, component: str, summary: dict, snap_paths: list[str]) -> SnapshotRow:
    return SnapshotRow(
        destination_id=target.dest.id,
        snapshot_id=summary["snapshot_id"],
        backup_id="",  # filled in by _record
        component=component,
        time="",
        size=int(summary.get("total_bytes_processed") or 0),
        files=int(summary.get("total_files_processed") or 0),
        paths=snap_paths,
    )


def _restic_argv_prefix() -> list[str]:
    # If jabali dies (even SIGKILL), restic must not see a clean EOF and save a truncated dump as a
    # snapshot: setpriv makes the kernel send it SIGTERM when its parent dies.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _stream(engine: str, sections: list[dumps.Section], targets: list[Target], outcome: BackupOutcome,
            tags: list[str], when: str, host: str) -> None:
    stdin_name = dumps.STDIN_NAMES[engine]
    args = ["backup", "--json", "--host", host, "--time", when, *tags, "--stdin", "--stdin-filename", stdin_name]
    copies = {c.destination_id: c for c in outcome.copies}
    nonce = dumps.new_nonce()
    dump_error: str | None = None
    with ExitStack() as stack:
        procs: dict[int, restic.Running] = {}
        for target in targets:
            try:
                procs[target.dest.id] = stack.enter_context(
                    restic.Running(target.repo, args, feed_stdin=True, wrapper=_restic_argv_prefix())
                )
            except OperationFailed as exc:
                copies[target.dest.id].failures.append((engine, str(exc)))

        def broadcast(data: bytes) -> None:
            for proc in procs.values():
                proc.write(data)

        broadcast(dumps.header(nonce))
        for section in sections:
            broadcast(section.marker(nonce))
            dump_error = _dump_into(section, broadcast)
            if dump_error:
                break
        if dump_error:
            # Stop restic before it sees EOF: a truncated stream never becomes a snapshot.
            for proc in procs.values():
                restic._stop(proc.proc)
        else:
            broadcast(dumps.trailer(nonce))
        for target in targets:
            proc = procs.get(target.dest.id)
            if proc is None:
                continue
            copy = copies[target.dest.id]
            result = proc.wait()
            summary = proc.summary()
            if dump_error:
                if summary:  # restic finished anyway: remove the truncated snapshot
                    _forget_quietly(target.repo, summary["snapshot_id"])
                copy.failures.append((engine, dump_error))
            elif result.returncode != 0 or summary is None:
                copy.failures.append((engine, str(restic.error_for(target.repo, result))))
            else:
                copy.snapshots.append(_snapshot_row(target, copy, engine, summary, [f"/{stdin_name}"]))


def dump_env() -> dict[str, str]:
    """The environment of dump and client tools: the database variables the operator set (PG*, MYSQL_*),
    nothing else of jabali's (which may hold JABALI_* secrets typed for a destination)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith(("PG", "MYSQL_"))}


def _dump_into(section: dumps.Section, sink) -> str | None:
    """Run one dump, copying its output to `sink`; return None, or why it failed."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(section.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                    env=dump_env())
        except OSError as exc:
            return f"cannot run {section.argv[0]}: {exc.strerror}"
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            while chunk := os.read(fd, CHUNK):
                sink(chunk)
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip().splitlines()
            detail = text[-1][:300] if text else ""
            return f"dump of {section.engine} database {section.database} failed (exit {rc}): {detail}"
    return None


def _forget_quietly(repo: Repository, snapshot_id: str) -> None:
    try:
        restic.run_unlocking(repo, ["forget", snapshot_id])
    except ResticError:
        pass  # the catalog never lists it, and restore refuses a stream without its trailer


def _record(app: App, account: AccountRow, outcome: BackupOutcome, started: str) -> None:
    with app.store.tx():
        for copy in outcome.copies:
            if copy.snapshots:
                app.store.put_copy(
                    BackupCopy(
                        backup_id=outcome.backup_id,
                        destination_id=copy.destination_id,
                        destination=copy.destination,
                        account=account.user,
                        time=started,
                        status=copy.status,
                        message=copy.message or None,
                        size=sum(s.size for s in copy.snapshots),
                        files=sum(s.files for s in copy.snapshots),
                        components=copy.components,
                    )
                )
                for snap in copy.snapshots:
                    app.store.put_snapshot(
                        SnapshotRow(snap.destination_id, snap.snapshot_id, outcome.backup_id, snap.component,
                                    started, snap.size, snap.files, snap.paths)
                    )
            for component, reason in copy.failures:
                app.store.add_event(
                    "backup_failed",
                    f"{component} backup of {account.user} to {copy.destination} failed: {reason}",
                    destination=copy.destination,
                    account=account.user,
                    component=component,
                )
        messages = [f"{c.destination}: {c.message}" for c in outcome.copies if c.message]
        components = sorted({x for c in outcome.copies for x in c.components})
        app.store.finish_backup(outcome.backup_id, outcome.status, "; ".join(messages)[:4000] or None, components)
