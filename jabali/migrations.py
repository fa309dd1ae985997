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

MIGRATIONS.append(
    (
        2,
        "packages, accounts, schedule targets, backup catalog",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE packages (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            keep_daily INTEGER NOT NULL DEFAULT 7,
            keep_weekly INTEGER NOT NULL DEFAULT 4,
            keep_monthly INTEGER NOT NULL DEFAULT 12,
            tenant_visible INTEGER NOT NULL DEFAULT 1,
            download INTEGER NOT NULL DEFAULT 1,
            auto_approve_restores INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            user TEXT NOT NULL UNIQUE,
            package_id INTEGER NOT NULL REFERENCES packages(id) ON DELETE RESTRICT,
            config TEXT NOT NULL,              -- JSON: home, mail_dir, zone_files, crontab, databases, pg_databases
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE schedule_targets (
            schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('all', 'package', 'account')),
            ref TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (schedule_id, kind, ref)
        );
        -- One backup of one account (a group of restic snapshots sharing the tag backup=<id>).
        CREATE TABLE backups (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            kind TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,              -- running | ok | warning | partial | failed
            message TEXT,
            components TEXT NOT NULL DEFAULT '[]',
            schedule TEXT,
            pid INTEGER
        );
        CREATE INDEX backups_account ON backups(account, started_at);
        CREATE INDEX backups_status ON backups(status);
        -- That backup on one destination.
        CREATE TABLE backup_copies (
            backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
            destination_id INTEGER NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
            account TEXT NOT NULL,
            time TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT,
            size INTEGER NOT NULL DEFAULT 0,
            files INTEGER NOT NULL DEFAULT 0,
            components TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (backup_id, destination_id)
        );
        CREATE INDEX backup_copies_account ON backup_copies(account, time);
        CREATE INDEX backup_copies_destination ON backup_copies(destination_id, time);
        CREATE TABLE snapshots (
            destination_id INTEGER NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
            snapshot_id TEXT NOT NULL,
            backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
            component TEXT NOT NULL,
            time TEXT NOT NULL,
            size INTEGER NOT NULL DEFAULT 0,
            files INTEGER NOT NULL DEFAULT 0,
            paths TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (destination_id, snapshot_id)
        );
        CREATE INDEX snapshots_backup ON snapshots(backup_id, destination_id);
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        "restore requests, downloads, backup detail",
        """
        ALTER TABLE backups ADD COLUMN detail TEXT;   -- JSON: logical component -> source paths, databases
        CREATE TABLE restore_requests (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            backup_id TEXT NOT NULL,
            destination_id INTEGER REFERENCES destinations(id) ON DELETE SET NULL,
            components TEXT NOT NULL,          -- JSON list
            target TEXT NOT NULL CHECK (target IN ('in-place', 'staging')),
            paths TEXT NOT NULL DEFAULT '[]',  -- JSON list; empty = everything of the components
            status TEXT NOT NULL,              -- pending approved rejected cancelled running done failed
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            message TEXT,
            staging_dir TEXT,
            undo_backup_id TEXT,
            undo_of INTEGER REFERENCES restore_requests(id)
        );
        CREATE INDEX restore_requests_status ON restore_requests(status);
        CREATE INDEX restore_requests_account ON restore_requests(account);
        CREATE TABLE restore_history (
            id INTEGER PRIMARY KEY,
            request_id INTEGER NOT NULL REFERENCES restore_requests(id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            status TEXT NOT NULL,
            note TEXT
        );
        CREATE TABLE downloads (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            backup_id TEXT,
            path TEXT NOT NULL,
            size INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            deleted_at TEXT
        );
        CREATE INDEX downloads_expires ON downloads(expires_at);
        """,
    )
)
