"""Numbered schema migrations. Append only: never edit a migration that has shipped.

`store.Store` applies every migration whose number is not yet in `schema_migrations`, each in its own
transaction, so an interrupted upgrade leaves the database at the last complete version.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "destinations, secrets, schedules, events",
        """
        CREATE TABLE destinations (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            config TEXT NOT NULL,              -- JSON of the non-secret fields
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_test_at TEXT,
            last_test_ok INTEGER,
            last_test_message TEXT
        );
        -- Every secret, encrypted with the master key (AES-256-GCM, AAD = scope/name).
        CREATE TABLE admin_secrets (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            key_id TEXT NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (scope, name)
        );
        CREATE TABLE schedules (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            cron TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            last_run_at TEXT
        );
        CREATE TABLE schedule_destinations (
            schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
            destination_id INTEGER NOT NULL REFERENCES destinations(id) ON DELETE RESTRICT,
            position INTEGER NOT NULL,
            PRIMARY KEY (schedule_id, destination_id)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            destination TEXT,
            account TEXT,
            component TEXT,
            message TEXT NOT NULL
        );
        CREATE INDEX events_at ON events(at);
        """,
    ),
]
