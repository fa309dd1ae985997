"""The only module that speaks SQL: one SQLite file (WAL, foreign keys on, mode 0600), typed rows.

Given a path, `Store.open` creates the file if needed, applies pending migrations and returns a Store whose
methods each run one statement or one short transaction (`with store.tx():` groups several).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clock
from .migrations import MIGRATIONS


@dataclass(frozen=True)
class DestinationRow:
    id: int
    name: str
    type: str
    config: dict[str, Any]
    created_at: str
    updated_at: str
    last_test_at: str | None
    last_test_ok: bool | None
    last_test_message: str | None


@dataclass(frozen=True)
class ScheduleRow:
    id: int
    name: str
    cron: str
    enabled: bool
    created_at: str
    updated_at: str
    last_run_at: str | None
    destination_ids: tuple[int, ...]


@dataclass(frozen=True)
class SecretRow:
    scope: str
    name: str
    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class PackageRow:
    id: int
    name: str
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    tenant_visible: bool
    download: bool
    auto_approve_restores: bool


@dataclass(frozen=True)
class AccountRow:
    id: int
    user: str
    package: str
    config: dict[str, Any]


@dataclass(frozen=True)
class BackupCopy:
    """One backup of one account on one destination: what `snapshot list` shows."""

    backup_id: str
    destination_id: int
    destination: str
    account: str
    time: str
    status: str
    message: str | None
    size: int
    files: int
    components: list[str]
    kind: str = "account_full"


@dataclass(frozen=True)
class SnapshotRow:
    destination_id: int
    snapshot_id: str
    backup_id: str
    component: str
    time: str
    size: int
    files: int
    paths: list[str]


@dataclass(frozen=True)
class RestoreRow:
    id: int
    account: str
    backup_id: str
    destination_id: int | None
    components: list[str]
    target: str
    paths: list[str]
    status: str
    requested_by: str
    requested_at: str
    message: str | None
    staging_dir: str | None
    undo_backup_id: str | None
    undo_of: int | None


@dataclass(frozen=True)
class DownloadRow:
    id: int
    account: str
    backup_id: str | None
    path: str
    size: int
    created_at: str
    expires_at: str
    deleted_at: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    at: str
    kind: str
    destination: str | None
    account: str | None
    component: str | None
    message: str


class CatalogMixin:
    conn: sqlite3.Connection

    # -- meta -------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- packages ---------------------------------------------------------------------------------------
    def insert_package(self, name: str, values: dict[str, Any]) -> int:
        at = clock.iso(clock.now())
        cols = ["name", "created_at", "updated_at", *values]
        cur = self.conn.execute(
            f"INSERT INTO packages ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [name, at, at, *values.values()],
        )
        return int(cur.lastrowid or 0)

    def update_package(self, id_: int, values: dict[str, Any]) -> None:
        if not values:
            return
        sets = ", ".join(f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE packages SET {sets}, updated_at = ? WHERE id = ?",
            [*values.values(), clock.iso(clock.now()), id_],
        )

    def package(self, ref: str | int) -> PackageRow | None:
        row = self.conn.execute(
            "SELECT * FROM packages WHERE name = ? OR (id = ? AND ? GLOB '[0-9]*')", (str(ref), str(ref), str(ref))
        ).fetchone()
        return _package(row) if row else None

    def packages(self) -> list[PackageRow]:
        return [_package(r) for r in self.conn.execute("SELECT * FROM packages ORDER BY name")]

    def delete_package(self, id_: int) -> None:
        self.conn.execute("DELETE FROM packages WHERE id = ?", (id_,))

    def package_account_count(self, id_: int) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM accounts WHERE package_id = ?", (id_,)).fetchone()[0])

    # -- accounts ---------------------------------------------------------------------------------------
    _ACCOUNT_SQL = "SELECT a.id, a.user, p.name, a.config FROM accounts a JOIN packages p ON p.id = a.package_id"

    def insert_account(self, user: str, package_id: int, config: dict[str, Any]) -> int:
        at = clock.iso(clock.now())
        cur = self.conn.execute(
            "INSERT INTO accounts (user, package_id, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (user, package_id, json.dumps(config, sort_keys=True), at, at),
        )
        return int(cur.lastrowid or 0)

    def update_account(self, id_: int, package_id: int, config: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE accounts SET package_id = ?, config = ?, updated_at = ? WHERE id = ?",
            (package_id, json.dumps(config, sort_keys=True), clock.iso(clock.now()), id_),
        )

    def account(self, user: str) -> AccountRow | None:
        row = self.conn.execute(self._ACCOUNT_SQL + " WHERE a.user = ?", (user,)).fetchone()
        return _account(row) if row else None

    def accounts(self, package: str | None = None) -> list[AccountRow]:
        if package is None:
            rows = self.conn.execute(self._ACCOUNT_SQL + " ORDER BY a.user")
        else:
            rows = self.conn.execute(self._ACCOUNT_SQL + " WHERE p.name = ? ORDER BY a.user", (package,))
        return [_account(r) for r in rows]

    def delete_account(self, id_: int) -> None:
        self.conn.execute("DELETE FROM accounts WHERE id = ?", (id_,))

    # -- schedule targets -------------------------------------------------------------------------------
    def set_schedule_targets(self, schedule_id: int, targets: list[tuple[str, str]]) -> None:
        with self.tx():  # type: ignore[attr-defined]
            self.conn.execute("DELETE FROM schedule_targets WHERE schedule_id = ?", (schedule_id,))
            self.conn.executemany(
                "INSERT INTO schedule_targets (schedule_id, kind, ref) VALUES (?, ?, ?)",
                [(schedule_id, kind, ref) for kind, ref in targets],
            )

    def schedule_targets(self, schedule_id: int) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT kind, ref FROM schedule_targets WHERE schedule_id = ? ORDER BY kind, ref", (schedule_id,)
        )
        return [(r[0], r[1]) for r in rows]

    # -- catalog ----------------------------------------------------------------------------------------
    def start_backup(self, backup_id: str, account: str, kind: str, at: str, schedule: str | None) -> None:
        self.conn.execute(
            "INSERT INTO backups (id, account, kind, started_at, status, schedule, pid) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (backup_id, account, kind, at, schedule, os.getpid()),
        )

    def finish_backup(self, backup_id: str, status: str, message: str | None, components: list[str]) -> None:
        self.conn.execute(
            "UPDATE backups SET status = ?, message = ?, components = ?, finished_at = ? WHERE id = ?",
            (status, message, json.dumps(components), clock.iso(clock.now()), backup_id),
        )

    def upsert_backup(self, backup_id: str, account: str, kind: str, at: str, status: str, components: list[str]) -> None:
        """Used by `snapshot sync`: record a backup found in a repository (keeps what we already know)."""
        self.conn.execute(
            "INSERT INTO backups (id, account, kind, started_at, finished_at, status, components)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (backup_id, account, kind, at, at, status, json.dumps(components)),
        )

    def running_backups(self) -> list[tuple[str, str, int | None]]:
        rows = self.conn.execute("SELECT id, account, pid FROM backups WHERE status = 'running'")
        return [(r[0], r[1], r[2]) for r in rows]

    def backup_status(self, backup_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM backups WHERE id = ?", (backup_id,)).fetchone()
        return row[0] if row else None

    def put_copy(self, copy: BackupCopy, keep_existing: bool = False) -> None:
        """Record one backup on one destination; `keep_existing` (sync) never overwrites what a backup run
        recorded (status, sizes), which the repository alone cannot tell as precisely."""
        conflict = "DO NOTHING" if keep_existing else (
            "DO UPDATE SET status = excluded.status, message = excluded.message, size = excluded.size,"
            " files = excluded.files, components = excluded.components"
        )
        self.conn.execute(
            "INSERT INTO backup_copies (backup_id, destination_id, account, time, status, message, size, files, components)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (backup_id, destination_id) {conflict}",
            (
                copy.backup_id, copy.destination_id, copy.account, copy.time, copy.status, copy.message,
                copy.size, copy.files, json.dumps(copy.components),
            ),
        )

    def put_snapshot(self, snap: SnapshotRow) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO snapshots (destination_id, snapshot_id, backup_id, component, time, size, files, paths)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (snap.destination_id, snap.snapshot_id, snap.backup_id, snap.component, snap.time, snap.size,
             snap.files, json.dumps(snap.paths)),
        )

    _COPY_SQL = (
        "SELECT c.backup_id, c.destination_id, d.name, c.account, c.time, c.status, c.message, c.size, c.files,"
        " c.components, COALESCE(b.kind, 'account_full') FROM backup_copies c"
        " JOIN destinations d ON d.id = c.destination_id LEFT JOIN backups b ON b.id = c.backup_id"
    )

    def copies(
        self, account: str | None = None, destination_id: int | None = None, backup_id: str | None = None,
        limit: int | None = None,
    ) -> list[BackupCopy]:
        where, args = [], []
        # With an account, "+" keeps SQLite off the destination index: a destination holds every account's
        # copies, an account only its own (retention asks per account and destination; scanning the
        # destination's copies instead made run-due quadratic in the number of accounts).
        dest_column = "+c.destination_id" if account is not None else "c.destination_id"
        for column, value in (("c.account", account), (dest_column, destination_id), ("c.backup_id", backup_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = self._COPY_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY c.time DESC, c.backup_id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [
            BackupCopy(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), r[10])
            for r in self.conn.execute(sql, args)
        ]

    def snapshots_of(self, backup_id: str, destination_id: int) -> list[SnapshotRow]:
        rows = self.conn.execute(
            "SELECT destination_id, snapshot_id, backup_id, component, time, size, files, paths FROM snapshots"
            " WHERE backup_id = ? AND destination_id = ? ORDER BY component",
            (backup_id, destination_id),
        )
        return [SnapshotRow(*r[:7], json.loads(r[7])) for r in rows]

    def snapshot_ids(self, destination_id: int) -> set[str]:
        rows = self.conn.execute("SELECT snapshot_id FROM snapshots WHERE destination_id = ?", (destination_id,))
        return {r[0] for r in rows}

    def drop_copy(self, backup_id: str, destination_id: int) -> None:
        """Forget one backup on one destination (after restic forget); the backup row goes with its last copy."""
        with self.tx():  # type: ignore[attr-defined]
            self.conn.execute(
                "DELETE FROM snapshots WHERE backup_id = ? AND destination_id = ?", (backup_id, destination_id)
            )
            self.conn.execute(
                "DELETE FROM backup_copies WHERE backup_id = ? AND destination_id = ?", (backup_id, destination_id)
            )
            self.conn.execute(
                "DELETE FROM backups WHERE id = ? AND status != 'running'"
                " AND NOT EXISTS (SELECT 1 FROM backup_copies WHERE backup_id = ?)",
                (backup_id, backup_id),
            )


class RestoreMixin:
    conn: sqlite3.Connection

    def set_backup_detail(self, backup_id: str, detail: dict[str, Any]) -> None:
        self.conn.execute("UPDATE backups SET detail = ? WHERE id = ?", (json.dumps(detail), backup_id))

    def backup_detail(self, backup_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT detail FROM backups WHERE id = ?", (backup_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def backup_kind(self, backup_id: str) -> str | None:
        row = self.conn.execute("SELECT kind FROM backups WHERE id = ?", (backup_id,)).fetchone()
        return row[0] if row else None

    # -- restore requests -------------------------------------------------------------------------------
    def insert_restore(self, account: str, backup_id: str, destination_id: int, components: list[str], target: str,
                       paths: list[str], status: str, actor: str, undo_of: int | None = None) -> int:
        at = clock.iso(clock.now())
        with self.tx():  # type: ignore[attr-defined]
            cur = self.conn.execute(
                "INSERT INTO restore_requests (account, backup_id, destination_id, components, target, paths, status,"
                " requested_by, requested_at, undo_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (account, backup_id, destination_id, json.dumps(components), target, json.dumps(paths), status, actor,
                 at, undo_of),
            )
            rid = int(cur.lastrowid or 0)
            self.conn.execute(
                "INSERT INTO restore_history (request_id, at, actor, status, note) VALUES (?, ?, ?, ?, ?)",
                (rid, at, actor, "requested", None),
            )
            if status != "pending":
                self.conn.execute(
                    "INSERT INTO restore_history (request_id, at, actor, status, note) VALUES (?, ?, ?, ?, ?)",
                    (rid, at, actor, status, "auto-approved by the package"),
                )
        return rid

    def transition_restore(self, rid: int, from_states: tuple[str, ...], to: str, actor: str, note: str | None = None,
                           **fields: Any) -> bool:
        """Move a request to `to` only if it is in one of `from_states` (atomic: a request runs once)."""
        at = clock.iso(clock.now())
        sets = ", ".join(["status = ?"] + [f"{k} = ?" for k in fields])
        marks = ", ".join("?" for _ in from_states)
        with self.tx():  # type: ignore[attr-defined]
            cur = self.conn.execute(
                f"UPDATE restore_requests SET {sets} WHERE id = ? AND status IN ({marks})",
                [to, *fields.values(), rid, *from_states],
            )
            if cur.rowcount != 1:
                return False
            self.conn.execute(
                "INSERT INTO restore_history (request_id, at, actor, status, note) VALUES (?, ?, ?, ?, ?)",
                (rid, at, actor, to, note),
            )
        return True

    def restore(self, rid: int) -> RestoreRow | None:
        row = self.conn.execute("SELECT * FROM restore_requests WHERE id = ?", (rid,)).fetchone()
        return _restore(row) if row else None

    def restores(self, status: str | None = None, account: str | None = None) -> list[RestoreRow]:
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if account:
            where.append("account = ?")
            args.append(account)
        sql = "SELECT * FROM restore_requests" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [_restore(r) for r in self.conn.execute(sql, args)]

    def restore_history(self, rid: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT at, actor, status, note FROM restore_history WHERE request_id = ? ORDER BY id", (rid,)
        )
        return [dict(zip(("at", "actor", "status", "note"), r)) for r in rows]

    # -- downloads --------------------------------------------------------------------------------------
    def insert_download(self, account: str, backup_id: str | None, path: str, size: int, expires_at: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO downloads (account, backup_id, path, size, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (account, backup_id, path, size, clock.iso(clock.now()), expires_at),
        )
        return int(cur.lastrowid or 0)

    def downloads(self, account: str | None = None, live_only: bool = True) -> list[DownloadRow]:
        sql = "SELECT * FROM downloads WHERE 1 = 1"
        args: list[Any] = []
        if account:
            sql += " AND account = ?"
            args.append(account)
        if live_only:
            sql += " AND deleted_at IS NULL"
        return [DownloadRow(*r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def mark_download_deleted(self, did: int) -> None:
        self.conn.execute("UPDATE downloads SET deleted_at = ? WHERE id = ?", (clock.iso(clock.now()), did))


class Store(CatalogMixin, RestoreMixin):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._depth = 0

    @classmethod
    def open(cls, path: Path) -> "Store":
        """Given the database path, open (creating it 0600 if missing) and migrate it."""
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        store = cls(conn)
        store.migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[None]:
        """One write transaction (nestable: inner blocks join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # -- migrations -------------------------------------------------------------------------------------
    def migrate(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in self.conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            with self.tx():
                for statement in _split_sql(sql):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, clock.iso(clock.now())),
                )

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # -- destinations -----------------------------------------------------------------------------------
    def insert_destination(self, name: str, type_: str, config: dict[str, Any]) -> int:
        at = clock.iso(clock.now())
        cur = self.conn.execute(
            "INSERT INTO destinations (name, type, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (name, type_, json.dumps(config, sort_keys=True), at, at),
        )
        return int(cur.lastrowid or 0)

    def destination(self, ref: str | int) -> DestinationRow | None:
        """Given an id or a name, return that destination (a numeric name is looked up as an id first)."""
        row = None
        if isinstance(ref, int) or str(ref).isdigit():
            row = self.conn.execute("SELECT * FROM destinations WHERE id = ?", (int(ref),)).fetchone()
        if row is None:
            row = self.conn.execute("SELECT * FROM destinations WHERE name = ?", (str(ref),)).fetchone()
        return _destination(row) if row else None

    def destinations(self) -> list[DestinationRow]:
        return [_destination(r) for r in self.conn.execute("SELECT * FROM destinations ORDER BY id")]

    def update_destination(self, id_: int, name: str, config: dict[str, Any], reset_test: bool) -> None:
        at = clock.iso(clock.now())
        self.conn.execute(
            "UPDATE destinations SET name = ?, config = ?, updated_at = ? WHERE id = ?",
            (name, json.dumps(config, sort_keys=True), at, id_),
        )
        if reset_test:
            self.conn.execute(
                "UPDATE destinations SET last_test_at = NULL, last_test_ok = NULL, last_test_message = NULL"
                " WHERE id = ?",
                (id_,),
            )

    def record_test(self, id_: int, at: str, ok: bool, message: str) -> None:
        self.conn.execute(
            "UPDATE destinations SET last_test_at = ?, last_test_ok = ?, last_test_message = ? WHERE id = ?",
            (at, int(ok), message, id_),
        )

    def delete_destination(self, id_: int) -> None:
        self.conn.execute("DELETE FROM destinations WHERE id = ?", (id_,))

    # -- secrets ----------------------------------------------------------------------------------------
    def put_secret(self, row: SecretRow) -> None:
        self.conn.execute(
            "INSERT INTO admin_secrets (scope, name, key_id, nonce, ciphertext, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET"
            " key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext,"
            " updated_at = excluded.updated_at",
            (row.scope, row.name, row.key_id, row.nonce, row.ciphertext, clock.iso(clock.now())),
        )

    def secret(self, scope: str, name: str) -> SecretRow | None:
        row = self.conn.execute(
            "SELECT scope, name, key_id, nonce, ciphertext FROM admin_secrets WHERE scope = ? AND name = ?",
            (scope, name),
        ).fetchone()
        return SecretRow(*row) if row else None

    def secrets(self) -> list[SecretRow]:
        rows = self.conn.execute("SELECT scope, name, key_id, nonce, ciphertext FROM admin_secrets")
        return [SecretRow(*r) for r in rows]

    def secret_names(self, scope: str) -> list[str]:
        rows = self.conn.execute("SELECT name FROM admin_secrets WHERE scope = ? ORDER BY name", (scope,))
        return [r[0] for r in rows]

    def delete_secret(self, scope: str, name: str) -> None:
        self.conn.execute("DELETE FROM admin_secrets WHERE scope = ? AND name = ?", (scope, name))

    def delete_secrets(self, scope: str) -> None:
        self.conn.execute("DELETE FROM admin_secrets WHERE scope = ?", (scope,))

    def secret_key_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT key_id FROM admin_secrets")}

    # -- schedules --------------------------------------------------------------------------------------
    def insert_schedule(self, name: str, cron: str, enabled: bool, destination_ids: list[int]) -> int:
        at = clock.iso(clock.now())
        with self.tx():
            cur = self.conn.execute(
                "INSERT INTO schedules (name, cron, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, cron, int(enabled), at, at),
            )
            sid = int(cur.lastrowid or 0)
            self._set_schedule_destinations(sid, destination_ids)
        return sid

    def update_schedule(
        self, id_: int, name: str, cron: str, enabled: bool, destination_ids: list[int]
    ) -> None:
        with self.tx():
            self.conn.execute(
                "UPDATE schedules SET name = ?, cron = ?, enabled = ?, updated_at = ? WHERE id = ?",
                (name, cron, int(enabled), clock.iso(clock.now()), id_),
            )
            self.conn.execute("DELETE FROM schedule_destinations WHERE schedule_id = ?", (id_,))
            self._set_schedule_destinations(id_, destination_ids)

    def _set_schedule_destinations(self, sid: int, destination_ids: list[int]) -> None:
        self.conn.executemany(
            "INSERT INTO schedule_destinations (schedule_id, destination_id, position) VALUES (?, ?, ?)",
            [(sid, did, pos) for pos, did in enumerate(destination_ids)],
        )

    def schedule(self, ref: str | int) -> ScheduleRow | None:
        row = None
        if isinstance(ref, int) or str(ref).isdigit():
            row = self.conn.execute("SELECT * FROM schedules WHERE id = ?", (int(ref),)).fetchone()
        if row is None:
            row = self.conn.execute("SELECT * FROM schedules WHERE name = ?", (str(ref),)).fetchone()
        return self._schedule(row) if row else None

    def schedules(self) -> list[ScheduleRow]:
        return [self._schedule(r) for r in self.conn.execute("SELECT * FROM schedules ORDER BY id")]

    def schedules_targeting(self, destination_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT s.name FROM schedules s JOIN schedule_destinations d ON d.schedule_id = s.id"
            " WHERE d.destination_id = ? ORDER BY s.name",
            (destination_id,),
        )
        return [r[0] for r in rows]

    def set_schedule_last_run(self, id_: int, at: str) -> None:
        self.conn.execute("UPDATE schedules SET last_run_at = ? WHERE id = ?", (at, id_))

    def delete_schedule(self, id_: int) -> None:
        self.conn.execute("DELETE FROM schedules WHERE id = ?", (id_,))

    def _schedule(self, row: sqlite3.Row) -> ScheduleRow:
        dests = self.conn.execute(
            "SELECT destination_id FROM schedule_destinations WHERE schedule_id = ? ORDER BY position",
            (row["id"],),
        )
        return ScheduleRow(
            id=row["id"],
            name=row["name"],
            cron=row["cron"],
            enabled=bool(row["enabled"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            last_run_at=row["last_run_at"],
            destination_ids=tuple(r[0] for r in dests),
        )

    # -- events -----------------------------------------------------------------------------------------
    def add_event(
        self,
        kind: str,
        message: str,
        *,
        destination: str | None = None,
        account: str | None = None,
        component: str | None = None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO events (at, kind, destination, account, component, message) VALUES (?, ?, ?, ?, ?, ?)",
            (clock.iso(clock.now()), kind, destination, account, component, message),
        )
        return int(cur.lastrowid or 0)

    def events(self, kind: str | None = None, limit: int = 100) -> list[EventRow]:
        sql = "SELECT id, at, kind, destination, account, component, message FROM events"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [EventRow(*r) for r in self.conn.execute(sql, args)]


def _restore(row: sqlite3.Row) -> RestoreRow:
    return RestoreRow(
        id=row["id"], account=row["account"], backup_id=row["backup_id"], destination_id=row["destination_id"],
        components=json.loads(row["components"]), target=row["target"], paths=json.loads(row["paths"]),
        status=row["status"], requested_by=row["requested_by"], requested_at=row["requested_at"],
        message=row["message"], staging_dir=row["staging_dir"], undo_backup_id=row["undo_backup_id"],
        undo_of=row["undo_of"],
    )


def _package(row: sqlite3.Row) -> PackageRow:
    return PackageRow(
        id=row["id"],
        name=row["name"],
        keep_daily=row["keep_daily"],
        keep_weekly=row["keep_weekly"],
        keep_monthly=row["keep_monthly"],
        tenant_visible=bool(row["tenant_visible"]),
        download=bool(row["download"]),
        auto_approve_restores=bool(row["auto_approve_restores"]),
    )


def _account(row: sqlite3.Row) -> AccountRow:
    return AccountRow(id=row[0], user=row[1], package=row[2], config=json.loads(row[3]))


def _destination(row: sqlite3.Row) -> DestinationRow:
    ok = row["last_test_ok"]
    return DestinationRow(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        config=json.loads(row["config"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_test_at=row["last_test_at"],
        last_test_ok=None if ok is None else bool(ok),
        last_test_message=row["last_test_message"],
    )


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements (migrations contain no semicolons inside literals)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
