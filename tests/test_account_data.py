"""Smoke tests for tests/account_data.py (the hosting-account builder used by end-to-end backup/restore tests)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess

from account_data import (
    DASH_NAME,
    DOVECOT_RUNTIME,
    ODD_NAME,
    build_account,
    hardlink_groups,
    load_mysql_dump,
    load_pg_dump,
    mysql_dump,
    mysql_fingerprint,
    pg_dump,
    pg_fingerprint,
    tree_manifest,
)
from srv_db import imap_snapshot

pytest_plugins = ["srv_db"]


def test_home_tree_shape_and_stable_manifest(hosting_account, mariadb_server, postgres_server):
    acc = hosting_account
    pw = pwd.getpwnam(acc.user)
    assert (pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell) == (acc.uid, acc.gid, str(acc.home), "/usr/sbin/nologin")
    m1 = tree_manifest(acc.home)
    assert tree_manifest(acc.home) == m1
    kinds = {v[0] for v in m1.values()}
    assert kinds == {"dir", "file", "symlink"}
    assert m1["."][:4] == ("dir", 0o711, acc.uid, acc.gid)
    assert m1["public_html/index.php"][0] == "file"
    assert m1["public_html/current"][0::5] == ("symlink", "releases/v2")
    assert m1["public_html/dangling-link"][5] == "../does/not/exist.txt"
    assert not (acc.home / "public_html" / "dangling-link").exists()
    assert (acc.home / "public_html" / "releases" / "style-link.css").read_text().startswith("body")
    assert m1[f"private/{ODD_NAME}"][0] == "file" and m1[f"private/{DASH_NAME}"][0] == "file"
    assert {m1[p][1] for p in m1 if m1[p][0] == "file"} >= {0o600, 0o644, 0o755}
    assert {m1[p][1] for p in m1 if m1[p][0] == "dir"} >= {0o700, 0o750, 0o755}
    assert m1["public_html/uploads/2024/01/empty-dir"][0] == "dir" and not os.listdir(acc.home / "public_html/uploads/2024/01/empty-dir")
    www = pwd.getpwnam("www-data")
    assert m1["public_html/uploads/2024/01/from-webserver.jpg"][2:4] == (www.pw_uid, www.pw_gid)
    assert m1["public_html"][2:4] == (acc.uid, www.pw_gid)
    assert m1["private/random.bin"][4] == 1 << 20 and m1["docs/empty.txt"][4] == 0
    assert hardlink_groups(acc.home) == [["docs/report-hardlink.txt", "docs/report.txt"]]
    assert all(v[6] >= 1_600_000_000 and v[6] < 1_700_000_000 for v in m1.values())
    # Maildir fully owned by the user
    assert all(v[2:4] == (acc.uid, acc.gid) for k, v in m1.items() if k.startswith("Maildir"))
    # zone and crontab
    zone = acc.zone_files[0].read_text()
    for rr in ("SOA", "NS", "\tA\t", "MX", "TXT"):
        assert rr in zone
    assert acc.domain in zone and not acc.zone_files[0].is_relative_to(acc.home)
    st = acc.crontab.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode), acc.crontab.name) == (acc.uid, 0o600, acc.user)
    assert acc.crontab.read_text().count("* *") >= 1
    # ignore patterns: excluded paths vanish, their parent keeps no mtime
    m_ign = tree_manifest(acc.home, ignore=["private/*"])
    assert "private" in m_ign and m_ign["private"][6] is None and not any(k.startswith("private/") for k in m_ign)

    # rebuilding the same account is idempotent (files, ownership, mtimes, databases)
    fps = {d: mysql_fingerprint(mariadb_server, d) for d in acc.mysql_databases}
    pfp = pg_fingerprint(postgres_server, acc.pg_databases[0])
    acc2 = build_account(acc.base, acc.user, mariadb=mariadb_server, postgres=postgres_server)
    assert tree_manifest(acc2.home) == m1
    assert {d: mysql_fingerprint(mariadb_server, d) for d in acc2.mysql_databases} == fps
    assert pg_fingerprint(postgres_server, acc2.pg_databases[0]) == pfp


def test_mysql_dump_roundtrip(hosting_account, mariadb_server):
    acc, db = hosting_account, mariadb_server
    assert acc.mysql_databases == [f"{acc.user}_shop", f"{acc.user}_blog"]
    before = {d: mysql_fingerprint(db, d) for d in acc.mysql_databases}
    shop = before[f"{acc.user}_shop"]
    assert set(shop["tables"]) == {"products", "orders", "order_items", "legacy_latin1"}
    assert shop["tables"]["orders"][0] == 200 and shop["tables"]["products"][1]
    assert [t[0] for t in shop["triggers"]] == ["order_items_stock"] and list(shop["views"]) == ["order_totals"]
    assert [r[0] for r in shop["routines"]] == ["order_total"]
    assert list(before[f"{acc.user}_blog"]["views"]) == ["published_posts"]
    assert mysql_fingerprint(db, f"{acc.user}_shop") == shop  # stable

    dump = mysql_dump(db, *acc.mysql_databases)
    for d in acc.mysql_databases:
        db.sql(f"DROP DATABASE `{d}`")
    assert mysql_fingerprint(db, acc.mysql_databases[0])["tables"] == {}
    load_mysql_dump(db, dump)
    assert {d: mysql_fingerprint(db, d) for d in acc.mysql_databases} == before
    # the fingerprint notices a changed byte in a BLOB
    db.sql("UPDATE products SET image = CONCAT(LEFT(image, 10), 'X', SUBSTRING(image, 12)) WHERE sku = 'MUG-1'", acc.mysql_databases[0])
    assert mysql_fingerprint(db, acc.mysql_databases[0]) != shop


def test_pg_dump_roundtrip(hosting_account, postgres_server):
    acc, pg = hosting_account, postgres_server
    (name,) = acc.pg_databases
    assert name == f"{acc.user}_app"
    before = pg_fingerprint(pg, name)
    assert set(before["tables"]) == {"public.accounts", "public.invoices", "public.audit"}
    assert before["tables"]["public.invoices"][0] == 150
    assert before["sequences"]["public.invoice_no"] == 1000 + 7 * 152
    assert before["sequences"]["public.accounts_id_seq"] == 4
    assert pg_fingerprint(pg, name) == before

    # plain dump into a recreated database
    plain = pg_dump(pg, name)
    pg.sql(f'DROP DATABASE "{name}"')
    load_pg_dump(pg, plain, name)
    assert pg_fingerprint(pg, name) == before
    # --create dump, loaded without naming the database; custom format through pg_restore
    created = pg_dump(pg, name, "--create")
    custom = pg_dump(pg, name, "-Fc")
    pg.sql(f'DROP DATABASE "{name}"')
    load_pg_dump(pg, created, None)
    assert pg_fingerprint(pg, name) == before
    pg.sql(f'DROP DATABASE "{name}"')
    load_pg_dump(pg, custom, name)
    assert pg_fingerprint(pg, name) == before
    pg.sql("SELECT nextval('invoice_no')", name)
    assert pg_fingerprint(pg, name) != before


def test_dovecot_serves_the_maildir(hosting_account, dovecot_imap):
    acc = hosting_account
    mail_before = tree_manifest(acc.mail_dir)
    assert {"dovecot-uidlist", "dovecot-keywords", "subscriptions", ".Work/dovecot-keywords"} <= set(mail_before)
    assert any(k.startswith("new/") for k in mail_before) and any(k.endswith(":2,") for k in mail_before)
    imap = dovecot_imap(acc.mail_dir, owner=acc.user)
    try:
        snap = imap_snapshot(imap)
        assert snap == acc.imap_expected
        assert set(snap) == {"INBOX", "Sent", "Work", "Work.Projects", "Entw&APw-rfe"}
        flags = {f for msgs in snap.values() for _, fl in msgs for f in fl}
        assert {"\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Forwarded", "$Important", "Invoice"} <= flags
        assert ("<%s.6@%s>" % (acc.user, acc.domain), ()) in snap["INBOX"]  # new/, unread
        m = imap.connect()
        try:
            typ, data = m.lsub('""', "*")
            assert typ == "OK"
            subscribed = {line.decode().rsplit(" ", 1)[1].strip('"') for line in data if line}
        finally:
            m.logout()
        assert subscribed == set(acc.subscriptions)
    finally:
        imap.stop()
    # message files (not dovecot's own bookkeeping) are unchanged by serving them read-only
    after = tree_manifest(acc.mail_dir, ignore=DOVECOT_RUNTIME)
    msgs = {k: v for k, v in mail_before.items() if "/cur/" in k or "/new/" in k or k.startswith(("cur/", "new/"))}
    assert {k: after.get(k) for k in msgs} == msgs
    r = subprocess.run(["find", str(acc.mail_dir), "!", "-user", acc.user], capture_output=True, text=True)
    assert r.stdout == ""
