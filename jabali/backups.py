"""Running backups: choosing destinations, one backup per account at a time, recovering interrupted
runs, and retention (forget whole backups by snapshot id, then one prune per destination).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from dataclasses import dataclass

from filelock import FileLock, Timeout

from . import accounts, clock, destination_ops, paths, restic
from .app import App
from .engine import BackupOutcome, Target, backup_account
from .errors import Busy, InvalidInput, OperationFailed
from .progress import Progress
from .restic import ResticError
from .retention import Policy, to_forget
from .store import AccountRow, DestinationRow

INTERRUPTED = "interrupted: jabali stopped before this backup finished"
UNDO_DAYS = 30  # how long an in-place restore stays undoable


def account_lock(user: str) -> FileLock:
    return FileLock(str(paths.sub_dir("locks") / f"account-{user}.lock"), timeout=0)


def recover_interrupted(app: App) -> list[str]:
    """Mark backups left 'running' by a process that died as failed (their account lock is free), and remove
    the snapshots they had already written: the catalog never listed them, so retention never would."""
    recovered = []
    for backup_id, user, _pid in app.store.running_backups():
        lock = account_lock(user)
        try:
            lock.acquire()
        except Timeout:
            continue  # a live backup of this account holds it
        try:
            app.store.finish_backup(backup_id, "failed", INTERRUPTED, [])
            recovered.append(backup_id)
            _purge_orphans(app, backup_id, user)
        finally:
            lock.release()
    return recovered


def _purge_orphans(app: App, backup_id: str, user: str) -> None:
    detail = app.store.backup_detail(backup_id) or {}
    for dest_id in detail.get("targets", []):
        dest = app.store.destination(dest_id)
        if dest is None:
            continue
        repo = destination_ops.repository_for(app, dest)
        try:
            found = restic.run_unlocking(repo, ["snapshots", "--json", "--tag", f"backup={backup_id}"]).json() or []
            if found:
                restic.run_unlocking(repo, ["forget", *[snap["id"] for snap in found]])
        except ResticError as exc:
            app.store.add_event(
                "backup_failed",
                f"interrupted backup {backup_id} of {user}: its partial snapshots on {dest.name} could not be"
                f" removed ({exc}); remove snapshots tagged backup={backup_id} by hand",
                destination=dest.name, account=user,
            )


def targets(app: App, refs: Iterable[str]) -> list[Target]:
    dests = [destination_ops.lookup(app, ref) for ref in refs]
    return [Target(dest, destination_ops.repository_for(app, dest)) for dest in dests]


def default_destinations(app: App, account: AccountRow) -> list[str]:
    """The destinations of every schedule that targets the account; else the default local destination."""
    refs: list[str] = []
    for sched in app.store.schedules():
        if sched.enabled and account.user in {a.user for a in schedule_accounts(app, sched.id)}:
            refs += [str(d) for d in sched.destination_ids if str(d) not in refs]
    if not refs:
        from . import defaults  # croniter is slow to import; `backup --destination` never gets here

        defaults.ensure(app)
        if app.store.destination(defaults.DEFAULT_DESTINATION):
            refs = [defaults.DEFAULT_DESTINATION]
    if not refs:
        raise InvalidInput("--destination", "no destination given and none is scheduled for this account")
    return refs


def schedule_accounts(app: App, schedule_id: int) -> list[AccountRow]:
    """The accounts a schedule backs up: all (also when it names no target), packages, accounts."""
    chosen = app.store.schedule_targets(schedule_id)
    if not chosen or any(kind == "all" for kind, _ in chosen):
        return app.store.accounts()
    users: dict[str, AccountRow] = {}
    for kind, ref in chosen:
        found = app.store.accounts(package=ref) if kind == "package" else [a for a in [app.store.account(ref)] if a]
        users.update({a.user: a for a in found})
    return [users[u] for u in sorted(users)]


def backup_now(
    app: App, user: str, dest_refs: list[str], *, schedule: str | None = None, progress: Progress | None = None
) -> BackupOutcome:
    """Back one account up now (to `dest_refs`, or its scheduled / default destinations)."""
    account = accounts.get_account(app, user)
    chosen = targets(app, dest_refs or default_destinations(app, account))
    lock = account_lock(user)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(f"a backup of {user} is already running") from None
    try:
        return backup_account(app, account, chosen, schedule=schedule, progress=progress)
    finally:
        lock.release()


@dataclass
class RetentionResult:
    destination: str
    forgotten: int
    pruned: bool
    error: str | None = None


def apply_retention(app: App, dest_id: int, users: Iterable[str]) -> RetentionResult:
    """Forget the backups the package policies no longer keep for `users` on one destination, in one
    `restic forget`, then prune once if anything was forgotten."""
    dest = app.store.destination(dest_id)
    assert dest is not None
    forget: list[tuple[str, list[str]]] = []
    for user in sorted(set(users)):
        account = app.store.account(user)
        pkg = app.store.package(account.package) if account else None
        if pkg is None:
            continue
        all_copies = app.store.copies(account=user, destination_id=dest_id)
        # Pre-restore (undo) backups are outside the package policy: kept UNDO_DAYS, then forgotten.
        copies = [c for c in all_copies if c.kind == "account_full"]
        undo_cutoff = clock.iso(clock.now() - timedelta(days=UNDO_DAYS))
        expired = [c.backup_id for c in all_copies if c.kind == "pre_restore" and c.time < undo_cutoff]
        policy = Policy(pkg.keep_daily, pkg.keep_weekly, pkg.keep_monthly)
        for backup_id in to_forget([(c.backup_id, c.time, c.status) for c in copies], policy) + expired:
            ids = [s.snapshot_id for s in app.store.snapshots_of(backup_id, dest_id)]
            forget.append((backup_id, ids))
    if not forget:
        return RetentionResult(dest.name, 0, False)
    repo = destination_ops.repository_for(app, dest)
    snapshot_ids = [sid for _, ids in forget for sid in ids]
    try:
        if snapshot_ids:
            restic.run_unlocking(repo, ["forget", *snapshot_ids])
        with app.store.tx():  # one commit for the whole batch, not one per backup
            for backup_id, _ in forget:
                app.store.drop_copy(backup_id, dest_id)
        restic.run_unlocking(repo, ["prune"])
    except ResticError as exc:
        app.store.add_event("backup_failed", f"retention on {dest.name} failed: {exc}", destination=dest.name)
        return RetentionResult(dest.name, len(forget), False, str(exc))
    return RetentionResult(dest.name, len(forget), True)


def pre_restore_backup(app: App, account: AccountRow, dest: DestinationRow, components: set[str]) -> str:
    """Back up what an in-place restore is about to overwrite, so `restore undo` can put it back."""
    target = Target(dest, destination_ops.repository_for(app, dest))
    outcome = backup_account(app, account, [target], kind="pre_restore", only=components)
    if outcome.status not in ("ok", "warning"):
        raise OperationFailed(
            f"the pre-restore backup (needed for undo) failed, so nothing was restored: {outcome.copies[0].message}"
        )
    return outcome.backup_id
