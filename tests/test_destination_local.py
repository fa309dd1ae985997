"""A local destination end to end with the real restic: create, test (auto-init), test again, the
password from --show-password opens the repository with plain restic, delete; failures are reported."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ProcWatcher, out_json


def test_local_lifecycle(run_cli, tmp_path: Path, plain_restic) -> None:
    repo = tmp_path / "repo"
    assert run_cli("destination", "create", "--type", "local", "--name", "home-disk", "--path", str(repo)).exit_code == 0

    first = run_cli("destination", "test", "home-disk")
    assert first.exit_code == 0, first.output
    assert "initialised" in first.output
    assert (repo / "config").is_file()

    second = run_cli("destination", "test", "home-disk")
    assert second.exit_code == 0, second.output
    assert "initialised" not in second.output

    listed = out_json(run_cli("destination", "list", "--json"))
    assert listed[0]["last_test"] == "ok" and listed[0]["last_test_at"]
    assert "password" not in json.dumps(listed)

    password = out_json(run_cli("destination", "get", "home-disk", "--show-password", "--json"))["password"]
    assert len(password) >= 43  # 32 random bytes, base64
    opened = plain_restic(str(repo), password, "snapshots", "--json")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout) == []
    # the write probe leaves no extra key behind
    keys = json.loads(plain_restic(str(repo), password, "key", "list", "--json").stdout)
    assert len(keys) == 1

    assert run_cli("destination", "delete", "home-disk").exit_code == 0
    assert out_json(run_cli("destination", "list", "--json")) == []
    assert (repo / "config").is_file(), "deleting a destination never deletes repository data"


def test_password_not_shown_without_flag(run_cli, tmp_path: Path) -> None:
    run_cli("destination", "create", "--type", "local", "--name", "d1", "--path", str(tmp_path / "r"))
    shown = out_json(run_cli("destination", "get", "d1", "--show-password", "--json"))["password"]
    for args in (("get", "d1"), ("get", "d1", "--json"), ("list",), ("list", "--json")):
        result = run_cli("destination", *args)
        assert result.exit_code == 0
        assert shown not in result.output


def test_failing_local_destination(run_cli, tmp_path: Path, restic_version) -> None:
    # A path below a regular file can never become a repository.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run_cli("destination", "create", "--type", "local", "--name", "broken", "--path", str(blocker / "repo"))
    result = run_cli("destination", "test", "broken")
    assert result.exit_code == 1
    assert "connect failed" in result.output and "not a directory" in result.output
    assert out_json(run_cli("destination", "get", "broken", "--json"))["last_test"] == "failed"


def test_wrong_password_is_named(run_cli, tmp_path: Path, plain_restic) -> None:
    repo = tmp_path / "existing"
    assert plain_restic(str(repo), "the-real-one", "init").returncode == 0
    result = run_cli("destination", "create", "--type", "local", "--name", "adopt", "--path", str(repo), "--password-stdin", input="not-it\n")
    assert result.exit_code == 0, result.output
    tested = run_cli("destination", "test", "adopt")
    assert tested.exit_code == 1
    assert "wrong repository password" in tested.output

    run_cli("destination", "create", "--type", "local", "--name", "adopt2", "--path", str(repo), "--password-stdin", input="the-real-one\n")
    assert run_cli("destination", "test", "adopt2").exit_code == 0


def test_no_password_in_restic_argv_or_env(run_cli, tmp_path: Path, restic_version) -> None:
    run_cli("destination", "create", "--type", "local", "--name", "watched", "--path", str(tmp_path / "r"))
    password = out_json(run_cli("destination", "get", "watched", "--show-password", "--json"))["password"]
    with ProcWatcher() as watcher:
        assert run_cli("destination", "test", "watched").exit_code == 0
    assert len(watcher.seen) >= 2, "expected to observe the restic children"
    for argv, env in watcher.seen.values():
        assert not any(password in a for a in argv)
        assert password not in "".join(env.values())
        assert "RESTIC_PASSWORD" not in env
