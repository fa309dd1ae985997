"""account_full backups end to end, with the real restic and real MariaDB, PostgreSQL and sshd:
run-due to a local and an SFTP destination; each snapshot restored with PLAIN restic gives back identical
files (content, mode, owner) and dumps that replay into the server and equal the source data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from account_data import (
    AccountData,
    load_mysql_dump,
    load_pg_dump,
    mysql_fingerprint,
    pg_fingerprint,
    tree_manifest,
)
from helpers import out_json
from srv_storage import sftp_command


def write_config(path: Path, mariadb, postgres, acc: AccountData, **mysql: str) -> None:
    lines = ["[mysql]", f"defaults_file = {mariadb.defaults_file}"]
    lines += [f"{k} = {v}" for k, v in mysql.items()]
    lines += ["[postgres]", f"host = {postgres.socket_dir}", f"port = {postgres.port}", "user = postgres",
              f"bindir = {postgres.bindir}", "[paths]", f"crontab_dir = {acc.crontab_dir}", "hostname = panel-test"]
    path.write_text("\n".join(lines) + "\n")
    from jabali import settings

    settings._load.cache_clear()


def add_account(run_cli, acc: AccountData) -> None:
    args = ["account", "create", acc.user, "--home", str(acc.home), "--mail-dir", str(acc.mail_dir)]
    for db in acc.mysql_databases:
        args += ["--database", db]
    for db in acc.pg_databases:
        args += ["--pg-database", db]
    for zone in acc.zone_files:
        args += ["--zone-file", str(zone)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output


def restic_cmd(repo: str, password: str, *args: str, sftp: str | None = None) -> list[str]:
    return ["restic", "--no-cache", "-r", repo, *(["-o", f"sftp.command={sftp}"] if sftp else []), *args]


def plain(repo: str, password: str, *args: str, sftp: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": "/root"}
    return subprocess.run(restic_cmd(repo, password, *args, sftp=sftp), env=env, capture_output=True, timeout=300, **kw)


@pytest.fixture
def config(tmp_path, mariadb_server, postgres_server, hosting_account):
    write_config(Path(os.environ["JABALI_CONFIG"]), mariadb_server, postgres_server, hosting_account)
    return hosting_account


def test_run_due_backs_up_everything_to_local_and_sftp(
    run_cli, tmp_path, config, mariadb_server, postgres_server, sshd_server
) -> None:
    acc = config
    local_repo = tmp_path / "local-repo"
    sftp_path = str(sshd_server.home / "repo-e2e")
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(local_repo)).exit_code == 0
    assert run_cli(
        "destination", "create", "--type", "sftp", "--name", "offsite", "--host", sshd_server.host,
        "--port", str(sshd_server.port), "--user", sshd_server.user, "--key", str(sshd_server.client_key),
        "--path", sftp_path,
    ).exit_code == 0
    for name in ("disk", "offsite"):
        tested = run_cli("destination", "test", name)
        assert tested.exit_code == 0, tested.output
    add_account(run_cli, acc)
    created = run_cli("schedule", "create", "--name", "night", "--destination", "disk", "--destination", "offsite",
                      "--cron", "0 3 * * *", "--account", acc.user, env={"JABALI_NOW": "2031-05-01T00:00:00+00:00"})
    assert created.exit_code == 0, created.output
    home_before = tree_manifest(acc.home)
    mysql_before = {db: mysql_fingerprint(mariadb_server, db) for db in acc.mysql_databases}
    pg_before = {db: pg_fingerprint(postgres_server, db) for db in acc.pg_databases}

    result = run_cli("run-due", "--json", env={"JABALI_NOW": "2031-05-01T03:01:00+00:00"})
    assert result.exit_code == 0, result.output
    items = [i for i in json.loads(result.stdout)["items"] if i["kind"] == "backup" and acc.user in i["target"]]
    assert {i["target"] for i in items} == {f"{acc.user} -> disk", f"{acc.user} -> offsite"}
    assert all(i["ok"] for i in items), items

    listing = out_json(run_cli("snapshot", "list", "--account", acc.user, "--json"))
    assert {c["destination"] for c in listing} == {"disk", "offsite"}
    assert all(c["status"] == "ok" for c in listing), listing
    assert set(listing[0]["components"]) == {"files", "databases", "mailboxes", "dns", "cron"}
    backup_id = listing[0]["backup_id"]
    assert all(c["backup_id"] == backup_id for c in listing), "one backup id groups every destination's copy"

    for dest, repo, sftp in (("disk", str(local_repo), None),
                             ("offsite", f"sftp:{sshd_server.user}@{sshd_server.host}:{sftp_path}", sftp_command(sshd_server))):
        password = out_json(run_cli("destination", "get", dest, "--show-password", "--json"))["password"]
        snaps = json.loads(plain(repo, password, "snapshots", "--json", sftp=sftp).stdout)
        by_component = {}
        for snap in snaps:
            tags = dict(t.partition("=")[::2] for t in snap["tags"])
            assert tags["backup"] == backup_id and tags["account"] == acc.user and tags["kind"] == "account_full"
            assert "jabali" in snap["tags"]
            by_component[tags["component"]] = snap["id"]
        assert set(by_component) == {"files", "mysql", "postgres"}

        target = tmp_path / f"restore-{dest}"
        restored = plain(repo, password, "restore", by_component["files"], "--target", str(target), sftp=sftp)
        assert restored.returncode == 0, restored.stderr
        assert tree_manifest(target / acc.home.relative_to("/")) == home_before
        for extra in (*acc.zone_files, acc.crontab):
            copy = target / extra.relative_to("/")
            assert copy.read_bytes() == extra.read_bytes()
            assert (copy.stat().st_mode, copy.stat().st_uid) == (extra.stat().st_mode, extra.stat().st_uid)
        manifest = json.loads(next(target.rglob("jabali-manifest.json")).read_text())
        assert manifest["account"] == acc.user and manifest["backup_id"] == backup_id

        mysql_sql = plain(repo, password, "dump", by_component["mysql"], "/mysql.sql", sftp=sftp).stdout
        pg_sql = plain(repo, password, "dump", by_component["postgres"], "/postgres.sql", sftp=sftp).stdout
        for db in acc.mysql_databases:
            mariadb_server.sql(f"DROP DATABASE `{db}`")
        load_mysql_dump(mariadb_server, mysql_sql)  # the stream replays as-is: plain-restic disaster recovery
        assert {db: mysql_fingerprint(mariadb_server, db) for db in acc.mysql_databases} == mysql_before
        for db in acc.pg_databases:
            postgres_server.sql(f'DROP DATABASE "{db}"')
        load_pg_dump(postgres_server, pg_sql, None)
        assert {db: pg_fingerprint(postgres_server, db) for db in acc.pg_databases} == pg_before


def test_dump_failing_midway_is_never_a_good_backup(run_cli, tmp_path, config, mariadb_server, postgres_server) -> None:
    """The dump command prints part of a dump, then exits non-zero (as mariadb-dump does when the server
    goes away): the mysql component fails, no mysql snapshot stays in the repository, the backup is partial
    and backup_failed names the component."""
    acc = config
    broken = tmp_path / "broken-dump"
    broken.write_text("#!/bin/sh\necho 'CREATE TABLE half_written ('\nexit 2\n")
    broken.chmod(0o755)
    write_config(Path(os.environ["JABALI_CONFIG"]), mariadb_server, postgres_server, acc, dump=str(broken))
    repo = tmp_path / "repo"
    run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo))
    assert run_cli("destination", "test", "disk").exit_code == 0
    add_account(run_cli, acc)

    result = run_cli("backup", acc.user, "--destination", "disk", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "partial"

    listing = out_json(run_cli("snapshot", "list", "--account", acc.user, "--json"))
    assert listing[0]["status"] == "partial" and "databases" not in listing[0]["components"]
    password = out_json(run_cli("destination", "get", "disk", "--show-password", "--json"))["password"]
    snaps = json.loads(plain(str(repo), password, "snapshots", "--json").stdout)
    components = sorted(t.split("=", 1)[1] for s in snaps for t in s["tags"] if t.startswith("component="))
    assert components == ["files", "postgres"], "the truncated mysql stream must not be in the repository"

    events = out_json(run_cli("events", "list", "--kind", "backup_failed", "--json"))
    assert any(e["component"] == "mysql" and e["account"] == acc.user and "exit 2" in e["message"] for e in events)


def test_snapshot_sync_rebuilds_catalog_from_repository(run_cli, tmp_path, monkeypatch, restic_version) -> None:
    """A host rebuilt after a loss: empty state + the destination and its password = the full listing."""
    import pwd

    user = "jbsync"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user], check=True)
    home = tmp_path / "home"
    (home / "public_html").mkdir(parents=True)
    (home / "public_html" / "index.html").write_text("hello")
    repo = tmp_path / "repo"
    run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo))
    assert run_cli("destination", "test", "disk").exit_code == 0
    assert run_cli("account", "create", user, "--home", str(home)).exit_code == 0
    for day in ("2031-01-01", "2031-01-02"):
        assert run_cli("backup", user, "--destination", "disk", env={"JABALI_NOW": f"{day}T02:00:00+00:00"}).exit_code == 0
    before = out_json(run_cli("snapshot", "list", "--json"))
    password = out_json(run_cli("destination", "get", "disk", "--show-password", "--json"))["password"]

    monkeypatch.setenv("JABALI_STATE_DIR", str(tmp_path / "new-state"))
    monkeypatch.setenv("JABALI_KEY_FILE", str(tmp_path / "new-key"))
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo), "--password-stdin",
                   input=password + "\n").exit_code == 0
    assert out_json(run_cli("snapshot", "list", "--json")) == []
    synced = run_cli("snapshot", "sync")
    assert synced.exit_code == 0, synced.output
    after = out_json(run_cli("snapshot", "list", "--json"))
    keys = ("backup_id", "account", "destination", "time", "status")
    assert [{k: c[k] for k in keys} for c in after] == [{k: c[k] for k in keys} for c in before]
