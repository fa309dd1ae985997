"""Behaviour the issues name that the larger suites do not pin down on their own: the embedded default,
fan-out with one failing destination, restic locks (stale cleared, live reported), serialised init, and the
DNS reload command after an in-place restore."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import out_json
from jabali import destination_ops, restic
from jabali.app import App
from small_account import Panel


def test_embedded_default_destination_and_nightly_schedule(run_cli, tmp_path: Path, restic_version) -> None:
    import pwd

    user = "jbdefault"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user], check=True)
    (tmp_path / "home").mkdir()
    assert run_cli("account", "create", user, "--home", str(tmp_path / "home")).exit_code == 0
    # Nothing configured but an account: the first run-due creates and initialises the default.
    assert run_cli("run-due", env={"JABALI_NOW": "2032-03-01T00:10:00+00:00"}).exit_code == 0
    local = out_json(run_cli("destination", "get", "local", "--json"))
    assert local["type"] == "local" and local["last_test"] == "ok"
    assert (Path(local["config"]["path"]) / "config").is_file(), "initialised"
    nightly = out_json(run_cli("schedule", "get", "nightly", "--json"))
    assert nightly["cron"] == "0 2 * * *" and nightly["destinations"] == ["local"] and nightly["targets"] == ["all"]
    # ... and the nightly run backs the account up there.
    assert run_cli("run-due", env={"JABALI_NOW": "2032-03-01T02:05:00+00:00"}).exit_code == 0
    assert [c["destination"] for c in out_json(run_cli("snapshot", "list", "--account", user, "--json"))] == ["local"]
    # An operator who removes the defaults is not overruled.
    assert run_cli("schedule", "delete", "nightly").exit_code == 0
    assert run_cli("destination", "delete", "local").exit_code == 0
    assert run_cli("run-due", env={"JABALI_NOW": "2032-03-02T02:05:00+00:00"}).exit_code == 0
    assert run_cli("destination", "get", "local").exit_code == 2


def test_one_failing_destination_does_not_stop_the_others(
    run_cli, tmp_path: Path, mariadb_server, postgres_server, hosting_account
) -> None:
    """Each database is dumped once and fanned out; a destination that fails gets its own outcome."""
    from test_backup_e2e import add_account, write_config

    acc = hosting_account
    write_config(Path(os.environ["JABALI_CONFIG"]), mariadb_server, postgres_server, acc)
    for name in ("good", "bad"):
        assert run_cli("destination", "create", "--type", "local", "--name", name, "--path", str(tmp_path / name)).exit_code == 0
        assert run_cli("destination", "test", name).exit_code == 0
    add_account(run_cli, acc)
    # The "bad" repository loses its config (a disk swapped under it): every restic run on it fails at once.
    (tmp_path / "bad" / "config").unlink()

    result = run_cli("backup", acc.user, "--destination", "good", "--destination", "bad", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    by_dest = {d["destination"]: d for d in report["destinations"]}
    assert by_dest["good"]["status"] == "ok", by_dest
    assert by_dest["bad"]["status"] == "failed", by_dest
    listed = out_json(run_cli("snapshot", "list", "--account", acc.user, "--json"))
    assert [(c["destination"], c["status"]) for c in listed] == [("good", "ok")]
    assert set(listed[0]["components"]) >= {"files", "databases"}
    events = out_json(run_cli("events", "list", "--kind", "backup_failed", "--json"))
    assert {e["component"] for e in events if e["destination"] == "bad"} >= {"files", "mysql", "postgres"}


def _hold_exclusive_lock(repo: Path, password: str) -> subprocess.Popen:
    """A live restic holding an exclusive lock: `key passwd` locks, then waits for the new password on a stdin
    that never comes."""
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": "/root"}
    proc = subprocess.Popen(["restic", "--no-cache", "-r", str(repo), "key", "passwd"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any((repo / "locks").iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, "restic never took its lock"
        time.sleep(0.01)
    return proc


def test_stale_lock_is_cleared_live_lock_is_reported(run_cli, tmp_path: Path, restic_version) -> None:
    repo = tmp_path / "repo"
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo)).exit_code == 0
    assert run_cli("destination", "test", "disk").exit_code == 0
    password = out_json(run_cli("destination", "get", "disk", "--show-password", "--json"))["password"]
    app = App()
    target = destination_ops.repository_for(app, destination_ops.get(app, "disk"))

    holder = _hold_exclusive_lock(repo, password)
    try:  # a live holder: reported, never broken
        try:
            restic.run_unlocking(target, ["forget", "--keep-last", "1"])
            raise AssertionError("a live exclusive lock must make forget fail")
        except restic.ResticError as exc:
            assert exc.failure is restic.Failure.LOCKED and "not broken" in str(exc)
        assert any((repo / "locks").iterdir()), "the live lock is still there"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died (a crashed run): its lock is stale, cleared with `restic unlock`, and the retry works.
    assert any((repo / "locks").iterdir())
    restic.run_unlocking(target, ["forget", "--keep-last", "1"])
    assert not any((repo / "locks").iterdir())
    app.close()


def test_concurrent_tests_of_one_repository_init_once(run_cli, tmp_path: Path, state_dir: Path, restic_version) -> None:
    repo = tmp_path / "shared"
    for name in ("a", "b"):
        assert run_cli("destination", "create", "--type", "local", "--name", name, "--path", str(repo)).exit_code == 0
    # Two destinations on one location cannot share a password: adopt a's for b, as an operator would.
    password = out_json(run_cli("destination", "get", "a", "--show-password", "--json"))["password"]
    assert run_cli("destination", "delete", "b").exit_code == 0
    assert run_cli("destination", "create", "--type", "local", "--name", "b", "--path", str(repo), "--password-stdin",
                   input=password + "\n").exit_code == 0
    procs = [subprocess.Popen([sys.executable, "-m", "jabali", "destination", "test", name], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=dict(os.environ)) for name in ("a", "b")]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum("initialised" in out for out in outputs) == 1, outputs
    assert len(list((repo / "keys").iterdir())) == 1


def test_dns_reload_runs_after_in_place_zone_restore(panel: Panel, tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    panel.write_config()
    conf = Path(os.environ["JABALI_CONFIG"])
    conf.write_text(conf.read_text().replace("[restore]\n", f"[restore]\ndns_reload = /usr/bin/touch {marker}\n"))
    from jabali import settings

    settings._load.cache_clear()
    acc = panel.account(zone=True)
    backup_id = panel.backup(acc)
    original = acc.zone.read_bytes()
    acc.zone.write_text("broken zone\n")
    rid = panel.json("restore", "request", "--account", acc.user, "--snapshot", backup_id, "--components", "dns",
                     "--target", "in-place")["id"]
    panel.cli("restore", "approve", str(rid))
    panel.cli("restore", "run", str(rid))
    assert acc.zone.read_bytes() == original
    assert marker.exists(), "the configured reload command ran"


def test_pre_restore_backups_expire_after_the_undo_window(panel: Panel) -> None:
    """An in-place restore keeps its undo backup for 30 days; the next retention after that forgets it."""
    acc = panel.account()
    backup_id = panel.backup(acc, env={"JABALI_NOW": "2033-01-01T01:00:00+00:00"})
    at = {"JABALI_NOW": "2033-01-01T01:10:00+00:00"}
    rid = panel.json("restore", "request", "--account", acc.user, "--snapshot", backup_id, "--components", "files",
                     "--target", "in-place", env=at)["id"]
    panel.cli("restore", "approve", str(rid), env=at)
    undo_id = panel.json("restore", "run", str(rid), env=at)["undo_backup_id"]
    kinds = {c["backup_id"]: c["kind"] for c in panel.json("snapshot", "list", "--account", acc.user)}
    assert kinds[undo_id] == "pre_restore"
    # Within the window a nightly run (with its retention) keeps it; 31 days on it is forgotten.
    panel.json("run-due", env={"JABALI_NOW": "2033-01-02T02:05:00+00:00"})
    assert undo_id in {c["backup_id"] for c in panel.json("snapshot", "list", "--account", acc.user)}
    panel.json("run-due", env={"JABALI_NOW": "2033-02-03T02:05:00+00:00"})
    assert undo_id not in {c["backup_id"] for c in panel.json("snapshot", "list", "--account", acc.user)}


def test_killed_backup_leaves_nothing_running_and_no_orphan_snapshot(panel: Panel, tmp_path: Path) -> None:
    """SIGKILL jabali while it streams a database: restic (pdeathsig) saves no truncated dump, the next run
    marks the backup failed (nothing stays 'running') and forgets the files snapshot it had already written."""
    slow_dump = tmp_path / "slow-dump"
    slow_dump.write_text("#!/bin/sh\necho 'CREATE TABLE t (a INT);'\nexec sleep 60\n")
    slow_dump.chmod(0o755)
    panel.write_config()
    conf = Path(os.environ["JABALI_CONFIG"])
    conf.write_text(conf.read_text() + f"[mysql]\ndump = {slow_dump}\n")
    from jabali import settings

    settings._load.cache_clear()
    acc = panel.account()
    panel.cli("account", "update", acc.user, "--database", "shop")
    repo = Path(panel.json("destination", "get", "local")["config"]["path"])
    before = set((repo / "snapshots").iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "jabali", "backup", acc.user, "--destination", "local"],
                            env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while set((repo / "snapshots").iterdir()) == before:  # the files snapshot is written first
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # now inside the database stream
    proc.kill()
    proc.wait()
    time.sleep(1)
    assert len(set((repo / "snapshots").iterdir()) - before) == 1, "no truncated dump snapshot was saved"

    result = panel.run_cli("run-due", "--json")
    assert result.exit_code == 3, "the interrupted backup is reported as a failure"
    assert any(i["kind"] == "recover" for i in json.loads(result.stdout)["items"])
    assert set((repo / "snapshots").iterdir()) == before, "the orphaned files snapshot was forgotten"
    assert panel.json("snapshot", "list", "--account", acc.user) == []
    subprocess.run(["pkill", "-f", str(slow_dump)], check=False)
