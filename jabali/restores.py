"""Restore requests: an explicit state machine with who and when recorded for every transition.

    pending --approve--> approved --(run-due | restore run)--> running --> done | failed
    pending --reject--> rejected          pending|approved --cancel--> cancelled

A request is queued for operator approval unless the account's package auto-approves restores. Moving to
`running` is one atomic UPDATE guarded by the current state, so a request can run only once.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from filelock import Timeout

from . import accounts, restore_run
from .app import App
from .backups import account_lock
from .components import LOGICAL
from .errors import Busy, Conflict, InvalidInput, NotFound
from .store import RestoreRow

TARGETS = ("in-place", "staging")


def operator() -> str:
    """Who is acting, for the record: the sudo caller if any, else the login."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def parse_components(value: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    if items == ["all"]:
        return list(LOGICAL)
    bad = [v for v in items if v not in LOGICAL]
    if not items or bad:
        raise InvalidInput("--components", f"must be 'all' or a comma list of {', '.join(LOGICAL)}")
    return [c for c in LOGICAL if c in items]


def get(app: App, rid: int, account: str | None = None) -> RestoreRow:
    req = app.store.restore(rid)
    if req is None or (account is not None and req.account != account):
        raise NotFound(f"restore request {rid} not found")
    return req


def request(
    app: App,
    user: str,
    backup_id: str,
    components: list[str],
    target: str,
    paths: list[str],
    actor: str,
    destination: str | None = None,
) -> RestoreRow:
    """File a restore request for one of the account's own backups; approved at once if the package says so."""
    account = accounts.get_account(app, user)
    if target not in TARGETS:
        raise InvalidInput("--target", "must be in-place or staging")
    paths = restore_run.check_paths(paths)
    if paths and "files" not in components:
        raise InvalidInput("--path", "selects home files, so --components must include files")
    copies = [c for c in app.store.copies(backup_id=backup_id) if c.account == user and c.kind == "account_full"]
    if not copies:
        raise InvalidInput("--snapshot", f"no backup {backup_id!r} of account {user!r}")
    copies.sort(key=lambda c: c.status not in ("ok", "warning"))  # by default, the first complete copy
    if components == list(LOGICAL):
        # "all" means everything this backup holds (an account without mail has no mailboxes to restore).
        held = set(copies[0].components)
        components = [c for c in LOGICAL if c in held] or components
    dest_id = copies[0].destination_id
    if destination is not None:
        match = [c for c in copies if c.destination == destination or str(c.destination_id) == destination]
        if not match:
            raise InvalidInput("--destination", f"backup {backup_id} has no copy on {destination!r}")
        dest_id = match[0].destination_id
    pkg = accounts.get_package(app, account.package)
    status = "approved" if pkg.auto_approve_restores else "pending"
    rid = app.store.insert_restore(user, backup_id, dest_id, components, target, paths, status, actor)
    return get(app, rid)


def _move(app: App, rid: int, from_states: tuple[str, ...], to: str, actor: str, note: str | None = None,
          account: str | None = None, **fields: Any) -> RestoreRow:
    req = get(app, rid, account)
    if not app.store.transition_restore(rid, from_states, to, actor, note, **fields):
        current = get(app, rid).status
        raise Conflict(f"restore request {rid} is {current}; it cannot become {to}")
    return get(app, req.id)


def approve(app: App, rid: int, actor: str) -> RestoreRow:
    return _move(app, rid, ("pending",), "approved", actor)


def reject(app: App, rid: int, actor: str, reason: str) -> RestoreRow:
    if not reason.strip():
        raise InvalidInput("--reason", "must say why")
    return _move(app, rid, ("pending",), "rejected", actor, reason.strip(), message=reason.strip())


def cancel(app: App, rid: int, actor: str, account: str | None = None) -> RestoreRow:
    return _move(app, rid, ("pending", "approved"), "cancelled", actor, account=account)


def execute(app: App, rid: int, actor: str) -> RestoreRow:
    """Run an approved request now (once); return it done or failed."""
    req = get(app, rid)
    lock = account_lock(req.account)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(f"a backup or restore of {req.account} is running; try again later") from None
    try:
        req = _move(app, rid, ("approved",), "running", actor)
        try:
            account = accounts.get_account(app, req.account)
            undo = req.undo_of is not None
            src = restore_run.source_for(app, account, req.backup_id, req.destination_id)
            outcome = restore_run.run(app, src, req.components, req.target, req.paths, mirror=undo, pre_restore=not undo)
        except BaseException as exc:
            message = str(exc) or exc.__class__.__name__
            app.store.transition_restore(rid, ("running",), "failed", actor, message, message=message)
            app.store.add_event("restore_failed", f"restore {rid} of {req.account} failed: {message}", account=req.account)
            if not isinstance(exc, Exception):
                raise
            return get(app, rid)
        final = "failed" if outcome.errors else "done"
        app.store.transition_restore(
            rid, ("running",), final, actor, outcome.message(), message=outcome.message(),
            staging_dir=outcome.staging_dir, undo_backup_id=outcome.undo_backup_id,
        )
        if outcome.errors:
            app.store.add_event("restore_failed", f"restore {rid} of {req.account}: {outcome.message()}",
                                account=req.account)
        return get(app, rid)
    finally:
        lock.release()


def undo(app: App, rid: int, actor: str) -> RestoreRow:
    """Put the account back as it was before in-place restore `rid`, from its pre-restore backup."""
    req = get(app, rid)
    if req.target != "in-place" or req.status not in ("done", "failed") or not req.undo_backup_id:
        raise Conflict(f"restore request {rid} has nothing to undo (only a finished in-place restore can be undone)")
    if any(r.undo_of == rid for r in app.store.restores(account=req.account)):
        raise Conflict(f"restore request {rid} was already undone")
    new_id = app.store.insert_restore(req.account, req.undo_backup_id, req.destination_id or 0, req.components,
                                      "in-place", [], "approved", actor, undo_of=rid)
    return execute(app, new_id, actor)


def recover_interrupted(app: App) -> list[int]:
    """Requests left 'running' by a process that died become failed (their account lock is free)."""
    out = []
    for req in app.store.restores(status="running"):
        lock = account_lock(req.account)
        try:
            lock.acquire()
        except Timeout:
            continue
        try:
            note = "interrupted: jabali stopped before this restore finished"
            if app.store.transition_restore(req.id, ("running",), "failed", "jabali", note, message=note):
                out.append(req.id)
        finally:
            lock.release()
    return out


def view(app: App, req: RestoreRow, history: bool = False) -> dict[str, Any]:
    out = {
        "id": req.id, "account": req.account, "backup_id": req.backup_id, "components": req.components,
        "target": req.target, "paths": req.paths, "status": req.status, "requested_by": req.requested_by,
        "requested_at": req.requested_at, "message": req.message, "staging_dir": req.staging_dir,
        "undo_backup_id": req.undo_backup_id, "undo_of": req.undo_of,
    }
    if history:
        out["history"] = app.store.restore_history(req.id)
    return out
