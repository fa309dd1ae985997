"""`run-due`: daily destination re-tests raise backup_failed; one run at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

from filelock import FileLock

from helpers import out_json
from jabali import paths


def test_daily_retest_records_backup_failed(run_cli, tmp_path: Path, restic_version) -> None:
    repo = tmp_path / "repo"
    run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo))
    env = {"JABALI_NOW": "2030-01-01T00:00:00+00:00"}
    assert run_cli("destination", "test", "disk", env=env).exit_code == 0

    # Within 24 h nothing is due.
    quiet = run_cli("run-due", "--json", env={"JABALI_NOW": "2030-01-01T23:00:00+00:00"})
    assert quiet.exit_code == 0 and out_json(quiet)["items"] == []

    # The disk goes away; the next day's re-test fails, run-due exits 3 and records the event.
    shutil.rmtree(repo)
    repo.write_text("not a repository any more")
    later = run_cli("run-due", env={"JABALI_NOW": "2030-01-02T01:00:00+00:00"})
    assert later.exit_code == 3, later.output
    assert "disk" in later.output and "FAILED" in later.output
    events = out_json(run_cli("events", "list", "--json"))
    assert events[0]["kind"] == "backup_failed"
    assert events[0]["destination"] == "disk"
    assert "daily test" in events[0]["message"]
    assert out_json(run_cli("destination", "get", "disk", "--json"))["last_test"] == "failed"


def test_dry_run_changes_nothing(run_cli, tmp_path: Path) -> None:
    run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(tmp_path / "r"))
    result = run_cli("run-due", "--dry-run", "--json")
    assert result.exit_code == 0
    assert out_json(result)["items"][0]["message"].startswith("would re-test")
    assert out_json(run_cli("destination", "get", "disk", "--json"))["last_test"] == "untested"


def test_second_run_due_exits_busy(run_cli) -> None:
    with FileLock(str(paths.sub_dir("locks") / "run-due.lock")):
        result = run_cli("run-due")
    assert result.exit_code == 4
    assert "another" in result.output
    assert run_cli("run-due").exit_code == 0, "the lock is gone once its holder is"
