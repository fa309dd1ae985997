"""Shared fixtures: every test gets its own state directory and key file (autouse), and a CLI runner.

Real servers (sshd, S3, REST, Azure, GCS, MariaDB, PostgreSQL, Dovecot) come from the plugin modules
listed below; each starts its server in a temp dir and stops it by PID.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jabali import restic
from jabali.cli import cli

pytest_plugins = ["srv_storage", "srv_gcs", "srv_db", "account_data", "small_account"]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("JABALI_STATE_DIR", str(state))
    monkeypatch.setenv("JABALI_KEY_FILE", str(tmp_path / "keys" / "master.key"))
    # No operator config file leaks in; tests that need settings write their own JABALI_CONFIG.
    monkeypatch.setenv("JABALI_CONFIG", str(tmp_path / "jabali.conf"))
    from jabali import settings

    settings._load.cache_clear()
    for var in ("JABALI_RESTIC_INSECURE_TLS", "JABALI_NOW", "JABALI_RESTIC"):
        monkeypatch.delenv(var, raising=False)
    yield state


@pytest.fixture
def run_cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, output, stderr)."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


def restic_available() -> str | None:
    if not shutil.which("restic"):
        return "restic is not installed (run scripts/install-deps.sh)"
    return None


@pytest.fixture(scope="session")
def restic_version() -> restic.Version:
    reason = restic_available()
    if reason:
        pytest.skip(reason)
    return restic.version()


@pytest.fixture
def plain_restic(restic_version: restic.Version):
    """Run the real restic directly (as an operator would), with the given repository and password."""
    import subprocess

    def run(repo: str, password: str, *args: str, env: dict[str, str] | None = None, cacert: str | None = None):
        full_env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "RESTIC_REPOSITORY": repo, "HOME": os.environ.get("HOME", "/root")}
        full_env.update(env or {})
        argv = ["restic", "--no-cache"] + (["--cacert", cacert] if cacert else []) + list(args)
        return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=300)

    return run
