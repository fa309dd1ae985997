"""Destination lifecycle: create, update, delete, show and test, over the Store and the Vault.

Each function takes the App and plain values, validates everything before writing anything, and writes
in one transaction, so a refused request leaves the database unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from . import clock, destinations, paths, validate
from .app import App
from .destinations import REPO_PASSWORD
from .errors import Conflict, InvalidInput, NotFound
from .probe import ProbeResult, probe
from .restic import Repository
from .store import DestinationRow

RETEST_AFTER = timedelta(hours=24)


def scope(dest_id: int) -> str:
    return f"destination:{dest_id}"


def get(app: App, ref: str) -> DestinationRow:
    dest = app.store.destination(ref)
    if dest is None:
        raise NotFound(f"destination {ref!r} not found")
    return dest


def lookup(app: App, ref: str, field: str = "--destination") -> DestinationRow:
    """Like `get`, for a destination named in an option: the error names the option."""
    dest = app.store.destination(ref)
    if dest is None:
        raise InvalidInput(field, f"destination {ref!r} not found")
    return dest


def secrets_of(app: App, dest: DestinationRow) -> dict[str, str]:
    out = {}
    for name in app.store.secret_names(scope(dest.id)):
        value = app.vault.get(scope(dest.id), name)
        if value is not None:
            out[name] = value
    return out


def repository_for(app: App, dest: DestinationRow) -> Repository:
    return destinations.repository(dest.type, dest.config, secrets_of(app, dest))


def create(app: App, type_: str, name: str, values: dict[str, Any], password: str | None = None) -> DestinationRow:
    """Validate and store a new destination with its own random repository password (or `password`,
    when adopting an existing repository)."""
    validate.name("--name", name)
    config, secrets = destinations.build(type_, values)
    if password is not None:
        password = password.rstrip("\r\n")
        if not password:
            raise InvalidInput("--password-stdin", "read an empty password")
    secrets[REPO_PASSWORD] = password or destinations.new_password()
    if app.store.destination(name) is not None:
        raise Conflict(f"--name: a destination named {name!r} already exists")
    app.vault.key  # create/load the master key before the transaction starts
    with app.store.tx():
        dest_id = app.store.insert_destination(name, type_, config)
        for key, value in secrets.items():
            app.vault.put(scope(dest_id), key, value)
    return get(app, str(dest_id))


def update(app: App, ref: str, values: dict[str, Any], new_name: str | None = None) -> DestinationRow:
    """Change some fields of a destination; a change that can move the repository clears its last test."""
    dest = get(app, ref)
    name = dest.name
    if new_name is not None and new_name != dest.name:
        name = validate.name("--name", new_name)
        if app.store.destination(name) is not None:
            raise Conflict(f"--name: a destination named {name!r} already exists")
    old_secrets = secrets_of(app, dest)
    config, secrets = destinations.build(dest.type, values, config=dest.config, stored_secrets=old_secrets)
    old_secrets.pop(REPO_PASSWORD, None)
    moved = config != dest.config or secrets != old_secrets
    with app.store.tx():
        app.store.update_destination(dest.id, name, config, reset_test=moved)
        for key in old_secrets.keys() - secrets.keys():
            app.store.delete_secret(scope(dest.id), key)
        for key, value in secrets.items():
            if old_secrets.get(key) != value:
                app.vault.put(scope(dest.id), key, value)
    return get(app, str(dest.id))


def delete(app: App, ref: str) -> DestinationRow:
    """Forget a destination and its secrets (the repository's data is left where it is)."""
    dest = get(app, ref)
    users = app.store.schedules_targeting(dest.id)
    if users:
        raise Conflict(
            f"destination {dest.name!r} is targeted by schedule(s) {', '.join(users)}:"
            " reassign or delete them first"
        )
    with app.store.tx():
        app.store.delete_secrets(scope(dest.id))
        app.store.delete_destination(dest.id)
    return dest


def test(app: App, ref: str) -> tuple[DestinationRow, ProbeResult]:
    """Connect, auto-init, prove write and delete; record the outcome on the destination."""
    dest = get(app, ref)
    repo = repository_for(app, dest)
    lock = paths.sub_dir("locks") / f"repo-{destinations.lock_name(dest.type, dest.config)}.lock"
    result = probe(repo, lock)
    app.store.record_test(dest.id, clock.iso(clock.now()), result.ok, result.message)
    return get(app, str(dest.id)), result


def retest_due(app: App) -> list[tuple[DestinationRow, ProbeResult]]:
    """Re-test every destination whose last test is missing or older than 24 h; a failure records a
    `backup_failed` event. Return what was tested."""
    now = clock.now()
    done = []
    for dest in app.store.destinations():
        if dest.last_test_at and now - clock.parse(dest.last_test_at) < RETEST_AFTER:
            continue
        dest, result = test(app, str(dest.id))
        if not result.ok:
            app.store.add_event(
                "backup_failed",
                f"daily test of destination {dest.name!r} failed: {result.message}",
                destination=dest.name,
            )
        done.append((dest, result))
    return done


def view(app: App, dest: DestinationRow, *, show_password: bool = False) -> dict[str, Any]:
    """A printable description: config, which secrets are set (never their values), last test."""
    secret_names = [n for n in app.store.secret_names(scope(dest.id)) if n != REPO_PASSWORD]
    out: dict[str, Any] = {
        "id": dest.id,
        "name": dest.name,
        "type": dest.type,
        "location": destinations.location(dest.type, dest.config),
        "config": dest.config,
        "secrets_set": secret_names,
        "last_test_at": dest.last_test_at,
        "last_test": test_state(dest),
        "last_test_message": dest.last_test_message,
        "schedules": app.store.schedules_targeting(dest.id),
        "created_at": dest.created_at,
    }
    if show_password:
        out["password"] = app.vault.get(scope(dest.id), REPO_PASSWORD)
    return out


def test_state(dest: DestinationRow) -> str:
    """untested, ok or failed: the last test's outcome as `list` shows it."""
    if dest.last_test_ok is None:
        return "untested"
    return "ok" if dest.last_test_ok else "failed"
