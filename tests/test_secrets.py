"""Secrets at rest: encrypted in SQLite, 0600 files, key rotation that survives a crash."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import out_json
from jabali import paths
from jabali.app import App

SECRET_KEY = "S3-secret-Zq8vX2pL0r"
ACCESS_KEY = "AKIAJABALITEST0042"


def _make(run_cli) -> str:
    result = run_cli(
        "destination", "create", "--type", "s3", "--name", "cloud", "--bucket", "jabali-bucket",
        "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--endpoint", "http://127.0.0.1:1",
    )
    assert result.exit_code == 0, result.output
    return out_json(run_cli("destination", "get", "cloud", "--show-password", "--json"))["password"]


def _all_state_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.glob("jabali.db*"))


def test_no_plaintext_secret_in_database(run_cli, state_dir: Path) -> None:
    password = _make(run_cli)
    data = _all_state_bytes(state_dir)
    for secret in (SECRET_KEY, ACCESS_KEY, password):
        assert secret.encode() not in data
    view = run_cli("destination", "get", "cloud", "--json").output
    assert SECRET_KEY not in view and ACCESS_KEY not in view and password not in view


def test_key_and_database_are_0600(run_cli, state_dir: Path) -> None:
    _make(run_cli)
    for path in (paths.key_file(), state_dir / "jabali.db"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert paths.key_file() != state_dir / "jabali.db"


def test_rotate_key(run_cli) -> None:
    password = _make(run_cli)
    old_key = paths.key_file().read_bytes()
    result = run_cli("secrets", "rotate-key")
    assert result.exit_code == 0, result.output
    assert paths.key_file().read_bytes() != old_key
    assert stat.S_IMODE(paths.key_file().stat().st_mode) == 0o600
    assert out_json(run_cli("destination", "get", "cloud", "--show-password", "--json"))["password"] == password
    app = App()
    assert app.vault.get("destination:1", "secret_key") == SECRET_KEY


def test_wrong_key_file_is_refused(run_cli) -> None:
    _make(run_cli)
    paths.key_file().unlink()
    result = run_cli("destination", "get", "cloud", "--show-password")
    assert result.exit_code == 1
    assert "master key" in result.output and "missing" in result.output
    assert not paths.key_file().exists(), "a new key must not be invented while secrets exist"


def test_rotation_interrupted_after_commit_is_finished_on_next_start(run_cli, monkeypatch) -> None:
    password = _make(run_cli)
    real_replace = Path.replace

    def crash(self: Path, target):  # the process dies between the commit and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        App().vault.rotate()
    monkeypatch.setattr(Path, "replace", real_replace)
    assert Path(str(paths.key_file()) + ".new").exists()
    assert out_json(run_cli("destination", "get", "cloud", "--show-password", "--json"))["password"] == password
    assert not Path(str(paths.key_file()) + ".new").exists()


def test_rotation_interrupted_before_commit_keeps_old_key(run_cli, monkeypatch) -> None:
    password = _make(run_cli)
    old_key = paths.key_file().read_bytes()
    from jabali.store import Store

    calls = {"n": 0}
    real_put = Store.put_secret

    def failing_put(self, row):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_put(self, row)

    monkeypatch.setattr(Store, "put_secret", failing_put)
    with pytest.raises(OSError):
        App().vault.rotate()
    monkeypatch.setattr(Store, "put_secret", real_put)
    assert paths.key_file().read_bytes() == old_key
    assert out_json(run_cli("destination", "get", "cloud", "--show-password", "--json"))["password"] == password


def test_secret_row_cannot_be_swapped(run_cli, state_dir: Path) -> None:
    """AAD binds a ciphertext to its row: copying one secret over another does not decrypt."""
    _make(run_cli)
    app = App()
    conn = app.store.conn
    conn.execute(
        "UPDATE admin_secrets SET nonce = (SELECT nonce FROM admin_secrets WHERE name = 'secret_key'),"
        " ciphertext = (SELECT ciphertext FROM admin_secrets WHERE name = 'secret_key') WHERE name = 'repo_password'"
    )
    app.close()
    result = run_cli("destination", "get", "cloud", "--show-password")
    assert result.exit_code == 1 and "does not decrypt" in result.output


def test_key_file_env_var_is_used(run_cli, tmp_path: Path, monkeypatch) -> None:
    custom = tmp_path / "elsewhere" / "k"
    monkeypatch.setenv("JABALI_KEY_FILE", str(custom))
    _make(run_cli)
    assert custom.exists() and stat.S_IMODE(custom.stat().st_mode) == 0o600
    assert os.environ["JABALI_KEY_FILE"] == str(custom)
