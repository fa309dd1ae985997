"""Restores end to end, with the real restic, real MariaDB and PostgreSQL and a real Dovecot:

- in place: the databases are dropped and recreated (tables added since the backup are gone), the home's files
  are the backup's again; `restore undo` then gives back the live state from right before the restore;
- staging: nothing live changes, and `<staging_parent>/<user>-restore-<time>/` holds the backup (home, Maildir,
  one replayable SQL file per database, zone files, crontab), owned by the account;
- mailboxes under a running IMAP server: flags and expunged messages come back as they were;
- `snapshot ls` browses a backup, and `restore request --path` restores only that part of the home.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

from account_data import (
    DOVECOT_RUNTIME,
    AccountData,
    mysql_fingerprint,
    pg_fingerprint,
    tree_manifest,
)
from helpers import out_json
from srv_db import imap_snapshot
from test_backup_e2e import add_account, write_config

# tree_manifest entries are (type, mode, uid, gid, size, sha256 | link target, mtime).


def content(manifest: dict[str, tuple]) -> dict[str, tuple]:
    """Type, mode, size and content (or link target) of every entry."""
    return {rel: (e[0], e[1], e[4], e[5]) for rel, e in manifest.items()}


def restored_view(manifest: dict[str, tuple], expected: dict[str, tuple], acc: AccountData,
                  roots: tuple[str, ...] = (".", "Maildir")) -> dict[str, tuple]:
    """What a restore into the tenant's tree must reproduce: type, mode, size, content and mtime of every entry,
    and the owner of the entries the account itself owned in `expected`.

    Owners: tar runs AS THE TENANT when it writes into the tenant's tree (jabali never does a root file
    operation there), so it can only create files the tenant owns: an entry owned by someone else (the upload
    the web server wrote, the log owned by root) comes back owned by the account, BY DESIGN, and public_html
    (user:www-data) keeps its group only because tar did not have to recreate it. So owners are compared only
    where `expected` has the account as both owner and group.
    mtime: not for `roots`, the tops of the restored trees (home, Maildir): the tar stream is stripped down to
    their contents, so their own entry is not extracted, and writing into them changes their mtime."""
    owned = {rel for rel, e in expected.items() if e[2:4] == (acc.uid, acc.gid)}
    return {rel: (e[0], e[1], e[4], e[5], None if rel in roots else e[6], e[2:4] if rel in owned else None)
            for rel, e in manifest.items()}


def assert_restored(now: dict[str, tuple], expected: dict[str, tuple], acc: AccountData) -> None:
    assert restored_view(now, expected, acc) == restored_view(expected, expected, acc)


def subtree(manifest: dict[str, tuple], top: str) -> dict[str, tuple]:
    return {rel: e for rel, e in manifest.items() if rel == top or rel.startswith(top + "/")}


def fingerprints(acc: AccountData, mariadb, postgres) -> dict[str, object]:
    out: dict[str, object] = {f"mysql:{db}": mysql_fingerprint(mariadb, db) for db in acc.mysql_databases}
    out.update({f"pg:{db}": pg_fingerprint(postgres, db) for db in acc.pg_databases})
    return out


def change_databases(acc: AccountData, mariadb, postgres) -> None:
    """A table added in one MariaDB database and in the PostgreSQL database; rows inserted and deleted."""
    shop, blog = acc.mysql_databases
    mariadb.sql(f"CREATE TABLE `{shop}`.added_later (id INT PRIMARY KEY, v TEXT);"
                f"INSERT INTO `{shop}`.added_later VALUES (1, 'new');"
                f"INSERT INTO `{shop}`.orders (customer, created) VALUES ('late customer', NOW());"
                f"DELETE FROM `{blog}`.comments WHERE author IS NULL;")
    (app,) = acc.pg_databases
    postgres.sql("CREATE TABLE added_later (id int PRIMARY KEY); INSERT INTO added_later VALUES (1), (2);"
                 "DELETE FROM invoices WHERE no < 1100; INSERT INTO audit (msg) VALUES ('after the backup');", app)


def change_home(acc: AccountData) -> None:
    """Files modified and files deleted (in public_html and elsewhere). What changes gets a whole-second mtime:
    restic 0.14's `dump` (the tar stream a restore extracts) rounds mtimes to the second."""
    (acc.home / "public_html" / "index.php").write_text("<?php echo 'defaced';\n")
    (acc.home / "public_html" / "assets" / "js" / "app.js").unlink()
    (acc.home / "private" / "secret.key").unlink()
    (acc.home / ".bashrc").write_text("export PATH=/evil:$PATH\n")
    when = int(time.time())
    for rel in ("public_html/index.php", "public_html/assets/js", "private", ".bashrc"):
        os.utime(acc.home / rel, (when, when))


def setup_account(run_cli, tmp_path: Path, acc: AccountData, mariadb, postgres, staging_parent: Path | None = None) -> None:
    conf = Path(os.environ["JABALI_CONFIG"])
    write_config(conf, mariadb, postgres, acc)
    if staging_parent is not None:
        with conf.open("a") as f:
            f.write(f"[restore]\nstaging_parent = {staging_parent}\n")
        from jabali import settings

        settings._load.cache_clear()
    created = run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(tmp_path / "repo"))
    assert created.exit_code == 0, created.output
    tested = run_cli("destination", "test", "disk")
    assert tested.exit_code == 0, tested.output
    add_account(run_cli, acc)


def backup(run_cli, acc: AccountData) -> str:
    result = run_cli("backup", acc.user, "--destination", "disk", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok", report
    return report["backup_id"]


def restore(run_cli, acc: AccountData, backup_id: str, *args: str) -> dict:
    """request (the default package wants approval) -> approve -> run; return the finished request."""
    req = out_json(run_cli("restore", "request", "--account", acc.user, "--snapshot", backup_id, *args, "--json"))
    assert req["status"] == "pending", req
    approved = run_cli("restore", "approve", str(req["id"]))
    assert approved.exit_code == 0, approved.output
    ran = run_cli("restore", "run", str(req["id"]), "--json")
    assert ran.exit_code == 0, ran.output
    done = json.loads(ran.stdout)
    assert done["status"] == "done", done
    return done


def test_in_place_restore_drops_and_recreates_then_undo_puts_it_back(
    run_cli, tmp_path, hosting_account, mariadb_server, postgres_server
) -> None:
    acc = hosting_account
    setup_account(run_cli, tmp_path, acc, mariadb_server, postgres_server)
    home_backup = tree_manifest(acc.home)
    dbs_backup = fingerprints(acc, mariadb_server, postgres_server)
    zone_backup = acc.zone_files[0].read_bytes()
    cron_backup = acc.crontab.read_bytes()
    backup_id = backup(run_cli, acc)

    change_databases(acc, mariadb_server, postgres_server)
    change_home(acc)
    acc.zone_files[0].write_text("; emptied\n")
    acc.crontab.write_text("* * * * * rm -rf ~\n")
    home_changed = tree_manifest(acc.home)
    dbs_changed = fingerprints(acc, mariadb_server, postgres_server)
    assert "added_later" in dbs_changed[f"mysql:{acc.mysql_databases[0]}"]["tables"]
    assert "public.added_later" in dbs_changed[f"pg:{acc.pg_databases[0]}"]["tables"]
    assert dbs_changed != dbs_backup

    done = restore(run_cli, acc, backup_id, "--components", "all", "--target", "in-place")
    assert done["undo_backup_id"] and done["staging_dir"] is None, done

    # Every database was dropped and recreated: the tables added since are gone, the rows are the backup's.
    assert fingerprints(acc, mariadb_server, postgres_server) == dbs_backup
    assert_restored(tree_manifest(acc.home), home_backup, acc)  # the Maildir (mailboxes) included
    assert acc.zone_files[0].read_bytes() == zone_backup
    assert acc.crontab.read_bytes() == cron_backup
    assert (acc.crontab.stat().st_uid, stat.S_IMODE(acc.crontab.stat().st_mode)) == (acc.uid, 0o600)

    # Undo: the live state from right before the restore, including what was added after the backup.
    undone = out_json(run_cli("restore", "undo", str(done["id"]), "--json"))
    assert undone["status"] == "done" and undone["undo_of"] == done["id"], undone
    assert fingerprints(acc, mariadb_server, postgres_server) == dbs_changed
    assert_restored(tree_manifest(acc.home), home_changed, acc)
    assert acc.zone_files[0].read_text() == "; emptied\n"
    assert acc.crontab.read_text() == "* * * * * rm -rf ~\n"
    again = run_cli("restore", "undo", str(done["id"]))
    assert again.exit_code == 2 and "already undone" in again.output


def test_staging_restore_leaves_live_data_alone(
    run_cli, tmp_path, hosting_account, mariadb_server, postgres_server
) -> None:
    acc = hosting_account
    # The tenant must be able to reach its staging dir (tar runs as the tenant): not under pytest's 0700 tmp.
    parent = acc.base / "staging"
    parent.mkdir(mode=0o755)
    setup_account(run_cli, tmp_path, acc, mariadb_server, postgres_server, staging_parent=parent)
    home_backup = tree_manifest(acc.home)
    dbs_backup = fingerprints(acc, mariadb_server, postgres_server)
    zones_backup = {z.name: z.read_bytes() for z in acc.zone_files}
    cron_backup = acc.crontab.read_bytes()
    backup_id = backup(run_cli, acc)

    change_databases(acc, mariadb_server, postgres_server)
    change_home(acc)
    home_live = tree_manifest(acc.home)
    dbs_live = fingerprints(acc, mariadb_server, postgres_server)

    done = restore(run_cli, acc, backup_id, "--components", "all", "--target", "staging")
    assert done["undo_backup_id"] is None
    staging = Path(done["staging_dir"])
    assert staging.parent == parent
    assert re.fullmatch(rf"{acc.user}-restore-\d{{8}}-\d{{6}}", staging.name), staging.name
    st = staging.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (acc.uid, acc.gid, 0o700)

    # Nothing live changed.
    assert tree_manifest(acc.home) == home_live
    assert fingerprints(acc, mariadb_server, postgres_server) == dbs_live

    # The staging tree is the backup, all of it owned by the account.
    assert sorted(os.listdir(staging)) == ["Maildir", "cron", "databases", "dns", "home"]
    for root, dirs, files in os.walk(staging):
        for name in [".", *dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            assert (st.st_uid, st.st_gid) == (acc.uid, acc.gid), os.path.join(root, name)
    # home/ and Maildir/ themselves are made by jabali (0700 like the staging dir); below them, the backup's.
    staged_home, staged_mail = tree_manifest(staging / "home"), tree_manifest(staging / "Maildir")
    assert staged_home.pop(".")[1] == staged_mail.pop(".")[1] == 0o700
    expected_home = {rel: e for rel, e in home_backup.items() if rel != "." and not rel.startswith("Maildir")}
    expected_mail = {os.path.relpath(rel, "Maildir"): e for rel, e in subtree(home_backup, "Maildir").items()
                     if rel != "Maildir"}
    assert restored_view(staged_home, {}, acc) == restored_view(expected_home, {}, acc)
    assert restored_view(staged_mail, {}, acc) == restored_view(expected_mail, {}, acc)
    assert {p.name: p.read_bytes() for p in (staging / "dns").iterdir()} == zones_backup
    assert (staging / "cron" / "crontab").read_bytes() == cron_backup
    assert sorted(os.listdir(staging / "databases")) == sorted(
        [f"mysql-{db}.sql" for db in acc.mysql_databases] + [f"postgres-{db}.sql" for db in acc.pg_databases])

    # Each SQL file replays as-is (it drops and recreates its database) and reproduces the backed-up one.
    for db in acc.mysql_databases:
        sql = (staging / "databases" / f"mysql-{db}.sql").read_bytes()
        subprocess.run([*mariadb_server.argv(), "--binary-mode"], input=sql, check=True, capture_output=True)
    for db in acc.pg_databases:
        sql = (staging / "databases" / f"postgres-{db}.sql").read_bytes()
        psql = [postgres_server.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", postgres_server.socket_dir,
                "-p", str(postgres_server.port), "-U", postgres_server.user, "-d", "postgres"]
        subprocess.run(psql, input=sql, check=True, capture_output=True)
    assert fingerprints(acc, mariadb_server, postgres_server) == dbs_backup


def message_files(maildir: Path) -> dict[str, tuple]:
    """The message files of a Maildir (name = flags) with their content, dovecot's bookkeeping left out."""
    return {rel: e for rel, e in content(tree_manifest(maildir, ignore=DOVECOT_RUNTIME)).items()
            if Path(rel).parent.name in ("cur", "new")}


def test_mailboxes_restore_under_a_running_imap_server(
    run_cli, tmp_path, hosting_account, mariadb_server, postgres_server, dovecot_imap
) -> None:
    acc = hosting_account
    setup_account(run_cli, tmp_path, acc, mariadb_server, postgres_server)
    messages = message_files(acc.mail_dir)
    imap = dovecot_imap(acc.mail_dir, owner=acc.user)
    try:
        before = imap_snapshot(imap)
        assert before == acc.imap_expected
        backup_id = backup(run_cli, acc)

        m = imap.connect()
        try:
            assert m.select("INBOX")[0] == "OK"
            assert m.store("1:2", "+FLAGS", "(\\Flagged)")[0] == "OK"
            assert m.store("1", "-FLAGS", "(\\Seen)")[0] == "OK"
            assert m.store("6", "+FLAGS", "(\\Seen \\Answered)")[0] == "OK"  # was in new/: dovecot moves it to cur/
            assert m.select('"Work"')[0] == "OK"
            assert m.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
            assert m.expunge()[0] == "OK"
        finally:
            m.logout()
        changed = imap_snapshot(imap)
        assert changed["INBOX"] != before["INBOX"] and len(changed["Work"]) == len(before["Work"]) - 1

        done = restore(run_cli, acc, backup_id, "--components", "mailboxes", "--target", "in-place")
        assert done["components"] == ["mailboxes"]
        assert imap_snapshot(imap) == before  # same folders, same messages, same flags per message
    finally:
        imap.stop()
    # One file per message again, under its backed-up name (the flags) and with its content.
    assert message_files(acc.mail_dir) == messages


def test_snapshot_ls_and_restoring_one_path(
    run_cli, tmp_path, hosting_account, mariadb_server, postgres_server
) -> None:
    acc = hosting_account
    setup_account(run_cli, tmp_path, acc, mariadb_server, postgres_server)
    home_backup = tree_manifest(acc.home)
    backup_id = backup(run_cli, acc)

    everything = {n["path"]: n for n in out_json(run_cli("snapshot", "ls", backup_id, "--json"))}
    assert {str(acc.home / rel) for rel in home_backup if rel != "."} <= set(everything)
    assert {str(acc.zone_files[0]), str(acc.crontab)} <= set(everything)
    index = everything[str(acc.home / "public_html" / "index.php")]
    assert (index["type"], index["size"], index["uid"]) == ("file", home_backup["public_html/index.php"][4], acc.uid)
    # With a PATH (relative to the home, or absolute): that directory and its direct children.
    assets = acc.home / "public_html" / "assets"
    below = out_json(run_cli("snapshot", "ls", backup_id, "public_html/assets", "--json"))
    assert sorted(n["path"] for n in below) == [str(assets), *(str(assets / d) for d in ("css", "img", "js"))]
    assert out_json(run_cli("snapshot", "ls", backup_id, str(assets), "--json")) == below
    table = run_cli("snapshot", "ls", backup_id, "public_html")
    assert table.exit_code == 0 and str(acc.home / "public_html" / "wp-config.php") in table.output
    assert run_cli("snapshot", "ls", backup_id, "../etc").exit_code == 2

    change_home(acc)  # changes inside public_html and outside it
    changed = tree_manifest(acc.home)
    restore(run_cli, acc, backup_id, "--components", "files", "--target", "in-place", "--path", "public_html")
    now = tree_manifest(acc.home)
    assert restored_view(subtree(now, "public_html"), home_backup, acc, roots=()) == \
        restored_view(subtree(home_backup, "public_html"), home_backup, acc, roots=())
    # Outside public_html nothing was touched: the other changes stay.
    assert {r: e for r, e in now.items() if r not in subtree(now, "public_html")} == \
        {r: e for r, e in changed.items() if r not in subtree(changed, "public_html")}
    assert "private/secret.key" not in now and (acc.home / ".bashrc").read_text() == "export PATH=/evil:$PATH\n"
