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
class EventRow:
    id: int
    at: str
    kind: str
    destination: str | None
    account: str | None
    component: str | None
    message: str


class Store:
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
