"""Destinations no local server can stand in for, with restic itself faked by pytest-subprocess (`fp`):

* B2: there is no B2 emulator (and restic 0.14's b2 backend has no endpoint option), so the test asserts the
  exact restic invocation instead: location, credentials in the environment, secrets nowhere on argv, the
  repository password on a pipe (`--password-file /dev/fd/N`).
* restic >= 0.17 exit codes (10 no repository, 11 locked, 12 wrong password), which restic 0.14 never uses.

Every restic process is registered; an unexpected one fails the test (ProcessNotRegisteredError).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from helpers import out_json
from jabali import restic

B2_ACCOUNT_ID = "000a1b2c3d4e5f60000000001"  # application key ID: 25 hex digits
B2_BUCKET = "panel-backups"
@dataclass
class Call:
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    password: bytes | None  # what restic would read from --password-file


@pytest.fixture
def fake_restic(fp) -> Iterator["FakeRestic"]:
    restic.version.cache_clear()  # never let a cached real (or fake) version leak between tests
    yield FakeRestic(fp)
    restic.version.cache_clear()


class FakeRestic:
    def __init__(self, fp, version: str = "0.17.3") -> None:
        self.fp = fp
        self.calls: list[Call] = []
        # jabali may ask `restic version` once per process (functools.lru_cache)
        fp.register(["restic", "version"], stdout=f"restic {version} compiled with go1.22.5 on linux/amd64\n")

    def expect(self, *args: str, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        """Register one `restic <global options> <args>` process."""
        self.fp.register(
            ["restic", self.fp.any(), *args],
            stdout=stdout.encode(),
            stderr=stderr.encode(),
            returncode=returncode,
            callback=self._record,
        )

    def _record(self, process) -> None:
        argv = [str(a) for a in process.args]
        kwargs = process.kwargs or {}
        password = None
        if "--password-file" in argv:
            path = argv[argv.index("--password-file") + 1]
            if path.startswith("/dev/fd/"):
                password = os.read(int(path.removeprefix("/dev/fd/")), 4096)  # the pipe jabali hands restic
        self.calls.append(Call(argv, dict(kwargs.get("env") or {}), tuple(kwargs.get("pass_fds") or ()), password))

    def subcommands(self) -> list[str]:
        """What each call asked restic to do: argv after the global options, without /dev/fd/N arguments."""
        out = []
        for call in self.calls:
            rest = call.argv[call.argv.index("--password-file") + 2:]
            out.append(" ".join(a for a in rest if not a.startswith("/dev/fd/")))
        return out


def test_b2_invocation(fake_restic: FakeRestic, run_cli) -> None:
    """restic is faked because no B2 emulator exists: this pins down what jabali hands the real restic."""
    app_key = "K000" + secrets.token_hex(15)
    created = run_cli("destination", "create", "--type", "b2", "--name", "b2", "--account-id", B2_ACCOUNT_ID,
                      "--application-key", app_key, "--bucket", B2_BUCKET, "--path", "hosts/panel1")
    assert created.exit_code == 0, created.output
    password = out_json(run_cli("destination", "get", "b2", "--show-password", "--json"))["password"]

    # restic 0.14's b2 texts: a missing config file is a 404 from blazer; init prints the same 404 as noise
    fake_restic.expect("list", "keys", returncode=1, stderr=(
        "Fatal: unable to open config file: Stat: b2_download_file_by_name: 404: \n"
        f"Is there a repository at the following location?\nb2:{B2_BUCKET}:hosts/panel1\n"))
    fake_restic.expect("init", stdout=f"created restic repository 1234abcd at b2:{B2_BUCKET}:hosts/panel1\n",
                       stderr="b2_download_file_by_name: 404: : b2.b2err\n")
    fake_restic.expect("list", "keys", stdout="deadbeef" * 8 + "\n")

    result = run_cli("destination", "test", "b2")
    assert result.exit_code == 0, result.output
    assert "initialised" in result.output
    assert fake_restic.subcommands() == ["list keys", "init", "list keys"]
    for call in fake_restic.calls:
        assert call.env["RESTIC_REPOSITORY"] == f"b2:{B2_BUCKET}:hosts/panel1"
        assert call.env["B2_ACCOUNT_ID"] == B2_ACCOUNT_ID
        assert call.env["B2_ACCOUNT_KEY"] == app_key
        assert "RESTIC_PASSWORD" not in call.env and password not in "".join(call.env.values())
        cmdline = "\0".join(call.argv)
        assert app_key not in cmdline and password not in cmdline
        fd_arg = call.argv[call.argv.index("--password-file") + 1]
        assert fd_arg == f"/dev/fd/{call.pass_fds[0]}"
        assert call.password == password.encode(), "the password travels on the pipe restic reads"


@pytest.mark.parametrize(
    ("codes", "expect_ok", "expected"),
    [
        # stderr says nothing classifiable: only the exit code can decide
        ({"open": 10}, True, "initialised"),
        ({"open": 12}, False, "wrong repository password"),
        ({"open": 11}, False, "repository is locked by another process"),
    ],
    ids=["10-no-repository-inits", "12-wrong-password", "11-locked"],
)
def test_restic_017_exit_codes(fake_restic: FakeRestic, run_cli, tmp_path, codes, expect_ok, expected) -> None:
    created = run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(tmp_path / "r"))
    assert created.exit_code == 0, created.output
    vague = "Fatal: something went wrong\n"

    fake_restic.expect("list", "keys", returncode=codes["open"], stderr=vague)
    if codes["open"] == 10:
        fake_restic.expect("init", stdout="created restic repository 1234abcd\n")
        fake_restic.expect("list", "keys", stdout="deadbeef" * 8 + "\n")

    result = run_cli("destination", "test", "disk")
    assert (result.exit_code == 0) is expect_ok, result.output
    assert expected in result.output

