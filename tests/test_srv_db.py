"""Smoke tests for the private MariaDB / PostgreSQL / Dovecot fixtures in tests/srv_db.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from srv_db import imap_snapshot

pytest_plugins = ["srv_db"]


def test_mariadb_create_insert_query(mariadb_server):
    db = mariadb_server
    db.sql("DROP DATABASE IF EXISTS smoke; CREATE DATABASE smoke CHARACTER SET utf8mb4")
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50)); INSERT INTO t VALUES (1,'Zoë'),(2,'bob')", "smoke")
    assert db.sql("SELECT id, name FROM t ORDER BY id", database="smoke") == "1\tZoë\n2\tbob\n"
    # the defaults file works for mariadb-dump as well
    r = subprocess.run(
        [db.dump, f"--defaults-file={db.defaults_file}", "--single-transaction", "--databases", "smoke"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "CREATE DATABASE" in r.stdout and "Zoë" in r.stdout
    db.sql("DROP DATABASE smoke")


def test_postgres_create_insert_query(postgres_server):
    pg = postgres_server
    pg.sql("DROP DATABASE IF EXISTS smoke")
    pg.sql("CREATE DATABASE smoke")
    pg.sql("CREATE TABLE t (id int primary key, name text); INSERT INTO t VALUES (1,'Zoë'),(2,'bob')", "smoke")
    assert pg.sql("SELECT id, name FROM t ORDER BY id", database="smoke") == "1|Zoë\n2|bob\n"
    r = subprocess.run([pg.tool("pg_dump"), "-h", pg.socket_dir, "-p", str(pg.port), "-U", pg.user, "smoke"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    assert "CREATE TABLE public.t" in r.stdout
    pg.sql("DROP DATABASE smoke")


def _msg(path: Path, msgid: str, subject: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n\r\nbody\r\n".encode()
    )


def test_dovecot_maildir_folders_and_flags(dovecot_imap, tmp_path):
    md = tmp_path / "Maildir"
    _msg(md / "new" / "1700000001.M1P1.test", "<new@x>", "fresh")
    _msg(md / "cur" / "1700000002.M2P1.test:2,S", "<seen@x>", "seen one")
    _msg(md / ".Work" / "cur" / "1700000003.M3P1.test:2,FS", "<flagged@x>", "flagged")
    _msg(md / ".Work" / "cur" / "1700000004.M4P1.test:2,RT", "", "no id, answered+deleted")
    # custom keyword: letter "a" -> first line of the folder's dovecot-keywords file
    _msg(md / ".Work" / "cur" / "1700000005.M5P1.test:2,Sa", "<kw@x>", "keyword")
    (md / ".Work" / "dovecot-keywords").write_text("0 $Forwarded\n")
    (md / ".Work" / "new").mkdir()
    (md / ".Work" / "tmp").mkdir()

    imap = dovecot_imap(md)
    assert imap.owner != "root" and imap.pid > 0
    snap = imap_snapshot(imap)
    assert snap == {
        "INBOX": [("<new@x>", ()), ("<seen@x>", ("\\Seen",))],
        "Work": [
            ("<flagged@x>", ("\\Flagged", "\\Seen")),
            ("<kw@x>", ("$Forwarded", "\\Seen")),
            ("no id, answered+deleted", ("\\Answered", "\\Deleted")),
        ],
    }
    # snapshot is read-only and repeatable
    assert imap_snapshot(imap) == snap
    imap.stop()
