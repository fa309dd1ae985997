"""Schedule storage, and the rules it enforces on destinations."""

from __future__ import annotations

from pathlib import Path

from helpers import db_dump, out_json


def _tested_destination(run_cli, tmp_path: Path, name: str = "disk") -> None:
    assert run_cli("destination", "create", "--type", "local", "--name", name, "--path", str(tmp_path / name)).exit_code == 0
    assert run_cli("destination", "test", name).exit_code == 0


def test_schedule_crud_and_destination_in_use(run_cli, tmp_path: Path, restic_version) -> None:
    _tested_destination(run_cli, tmp_path)
    created = run_cli("schedule", "create", "--name", "nightly", "--destination", "disk", "--cron", "0 2 * * *")
    assert created.exit_code == 0, created.output
    got = out_json(run_cli("schedule", "get", "nightly", "--json"))
    assert got["destinations"] == ["disk"] and got["cron"] == "0 2 * * *" and got["next_run_at"]
    assert [s["name"] for s in out_json(run_cli("schedule", "list", "--json"))] == ["nightly"]

    refused = run_cli("destination", "delete", "disk")
    assert refused.exit_code == 2
    assert "nightly" in refused.output

    assert run_cli("schedule", "update", "nightly", "--cron", "30 3 * * 1", "--disable").exit_code == 0
    got = out_json(run_cli("schedule", "get", "nightly", "--json"))
    assert got["cron"] == "30 3 * * 1" and got["enabled"] is False

    assert run_cli("schedule", "delete", "nightly").exit_code == 0
    assert run_cli("destination", "delete", "disk").exit_code == 0


def test_untested_destination_cannot_be_scheduled(run_cli, tmp_path: Path, state_dir: Path) -> None:
    run_cli("destination", "create", "--type", "local", "--name", "fresh", "--path", str(tmp_path / "r"))
    before = db_dump(state_dir)
    result = run_cli("schedule", "create", "--name", "s", "--destination", "fresh", "--cron", "0 2 * * *")
    assert result.exit_code == 2
    assert "--destination" in result.output and "test" in result.output
    assert db_dump(state_dir) == before


def test_bad_schedule_input(run_cli, tmp_path: Path, state_dir: Path, restic_version) -> None:
    _tested_destination(run_cli, tmp_path)
    before = db_dump(state_dir)
    for args, field in [
        (["--name", "s", "--destination", "disk", "--cron", "61 * * * *"], "--cron"),
        (["--name", "s", "--destination", "disk", "--cron", "every night"], "--cron"),
        (["--name", "s", "--destination", "disk", "--cron", "0 2 * * * *"], "--cron"),
        (["--name", "s", "--destination", "nope", "--cron", "0 2 * * *"], "--destination"),
        (["--name", "bad name", "--destination", "disk", "--cron", "0 2 * * *"], "--name"),
    ]:
        result = run_cli("schedule", "create", *args)
        assert result.exit_code == 2, (args, result.output)
        assert field in result.output
    assert db_dump(state_dir) == before
