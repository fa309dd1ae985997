"""Schedule timing under `run-due` with a frozen clock (JABALI_NOW): due, not due, missed runs made up once
(real restic); `--dry-run` lists what is due and changes nothing; two concurrent run-due processes: one
works, the other exits busy (4) (both with the fake restic, which shows every restic call and can hold a
backup for as long as the test needs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fake_restic
from account_data import ensure_account_user
from helpers import db_dump, out_json
from jabali import restic, settings

USER = "jbsched"
ROOT = Path(__file__).resolve().parents[1]


def at(day: int, hhmm: str) -> dict[str, str]:
    return {"JABALI_NOW": f"2030-03-{day:02d}T{hhmm}:00+00:00"}


def setup_account(run_cli, tmp_path: Path) -> Path:
    """Day 1, 01:00: a tested local destination `disk`, the account, and schedule `s` (02:00 daily, this
    account, to `disk`); then the first run-due (01:30, nothing due) creates the embedded default, whose
    nightly schedule is disabled so only `s` backs up. Returns the repository path."""
    home = tmp_path / "home"
    (home / "public_html").mkdir(parents=True)
    (home / "public_html" / "index.html").write_text("<h1>scheduled</h1>\n")
    ensure_account_user(USER, Path("/nonexistent"))
    Path(os.environ["JABALI_CONFIG"]).write_text(
        f"[paths]\ncrontab_dir = {tmp_path / 'crontabs'}\nhostname = panel-test\n"
    )
    settings._load.cache_clear()
    repo = tmp_path / "repo"
    t0 = at(1, "01:00")
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo), env=t0).exit_code == 0
    tested = run_cli("destination", "test", "disk", env=t0)
    assert tested.exit_code == 0, tested.output
    assert run_cli("account", "create", USER, "--home", str(home), env=t0).exit_code == 0
    created = run_cli("schedule", "create", "--name", "s", "--destination", "disk", "--cron", "0 2 * * *",
                      "--account", USER, env=t0)
    assert created.exit_code == 0, created.output

    first = run_cli("run-due", "--json", env=at(1, "01:30"))
    assert first.exit_code == 0, first.output
    assert backups_in(first) == []
    assert [s["name"] for s in out_json(run_cli("schedule", "list", "--json"))] == ["s", "nightly"]
    assert run_cli("schedule", "update", "nightly", "--disable").exit_code == 0
    return repo


def backups_in(result) -> list[dict]:
    return [i for i in json.loads(result.stdout)["items"] if i["kind"] == "backup"]


def catalog_times(run_cli) -> list[str]:
    return sorted(c["time"] for c in out_json(run_cli("snapshot", "list", "--json")))


def test_due_not_due_and_missed_runs_made_up_once(run_cli, tmp_path: Path, restic_version) -> None:
    setup_account(run_cli, tmp_path)
    assert catalog_times(run_cli) == []

    # 02:30: the 02:00 slot has passed -> one backup.
    due = run_cli("run-due", "--json", env=at(1, "02:30"))
    assert due.exit_code == 0, due.output
    assert [(i["target"], i["ok"]) for i in backups_in(due)] == [(f"{USER} -> disk", True)]
    assert catalog_times(run_cli) == ["2030-03-01T02:30:00+00:00"]
    got = out_json(run_cli("schedule", "get", "s", "--json", env=at(1, "02:31")))
    assert got["last_run_at"] == "2030-03-01T02:30:00+00:00"
    assert got["next_run_at"] == "2030-03-02T02:00:00+00:00"

    # 02:40: already ran for today's slot -> nothing.
    again = run_cli("run-due", "--json", env=at(1, "02:40"))
    assert again.exit_code == 0 and backups_in(again) == []

    # Day 4, 03:00: the slots of days 2, 3 and 4 were missed -> made up by exactly one backup.
    late = run_cli("run-due", "--json", env=at(4, "03:00"))
    assert late.exit_code == 0, late.output
    assert len(backups_in(late)) == 1
    assert catalog_times(run_cli) == ["2030-03-01T02:30:00+00:00", "2030-03-04T03:00:00+00:00"]
    assert run_cli("run-due", "--json", env=at(4, "03:05")).exit_code == 0
    assert len(catalog_times(run_cli)) == 2

    # The disabled nightly schedule never ran; everything went to `disk`.
    listed = out_json(run_cli("snapshot", "list", "--json"))
    assert {(c["destination"], c["account"], c["status"]) for c in listed} == {("disk", USER, "ok")}


def test_dry_run_lists_due_backups_and_changes_nothing(run_cli, tmp_path: Path, state_dir: Path,
                                                       fake_restic_bin: str) -> None:
    repo = setup_account(run_cli, tmp_path)
    log = fake_restic.CallLog(repo)
    log.new()
    before = db_dump(state_dir)
    dry = run_cli("run-due", "--dry-run", "--json", env=at(1, "02:30"))
    assert dry.exit_code == 0, dry.output
    assert backups_in(dry) == [{"kind": "backup", "target": f"{USER} -> disk", "ok": True,
                                "message": "would run (schedule s)"}]
    text = run_cli("run-due", "--dry-run", env=at(1, "02:30"))
    assert f"backup {USER} -> disk: ok - would run (schedule s)" in text.output
    assert db_dump(state_dir) == before
    assert log.new() == [], "a dry run runs no restic at all"
    assert fake_restic.load_state(repo)["snapshots"] == []

    # The dry run did not use up the slot.
    real = run_cli("run-due", "--json", env=at(1, "02:30"))
    assert len(backups_in(real)) == 1 and catalog_times(run_cli) == ["2030-03-01T02:30:00+00:00"]
    assert len(fake_restic.load_state(repo)["snapshots"]) == 1


@pytest.fixture
def fake_restic_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "bin").mkdir()
    path = fake_restic.install(tmp_path / "bin")
    monkeypatch.setenv("JABALI_RESTIC", path)
    restic.version.cache_clear()
    yield path
    restic.version.cache_clear()


def test_two_concurrent_run_due_one_works(run_cli, tmp_path: Path, fake_restic_bin: str) -> None:
    repo = setup_account(run_cli, tmp_path)
    log = fake_restic.CallLog(repo)
    log.new()
    # The fake restic holds the backup until `release` exists: the first run-due is busy for as long as
    # the test needs, however slow the machine.
    release = tmp_path / "release"
    fake_restic.set_faults(repo, [{"command": "backup", "wait_for": str(release)}])
    env = {**os.environ, **at(1, "02:30")}
    cmd = [sys.executable, "-m", "jabali", "run-due", "--json"]
    first = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        seen: list[list[str]] = []
        while not any(fake_restic.command_of(c) == "backup" for c in seen):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run-due never started its backup"
            time.sleep(0.05)
            seen += log.new()
        time.sleep(0.2)
        second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        release.touch()
    out1, err1 = first.communicate(timeout=120)

    assert second.returncode == 4, second
    assert "another `jabali run-due` is running" in second.stderr and second.stdout == ""
    assert first.returncode == 0, (out1, err1)
    assert [i["target"] for i in json.loads(out1)["items"] if i["kind"] == "backup"] == [f"{USER} -> disk"]
    assert catalog_times(run_cli) == ["2030-03-01T02:30:00+00:00"]
    assert [fake_restic.command_of(c) for c in seen + log.new()].count("backup") == 1
    assert len(fake_restic.load_state(repo)["snapshots"]) == 1
