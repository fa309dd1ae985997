"""Every network destination type against a real server, through the jabali CLI with the real restic.

For each type (sftp, s3, rest plain / basic auth / bearer token / TLS with a private CA, azure; TLS with a
self-signed certificate has its own test): create, test (initialises the repository), test again (does not),
the password from `get --show-password` opens the repository with plain restic, delete. While the first test
runs, /proc shows that no secret is on any restic argv, and neither the repository password nor a bearer token
in any restic environment; for sftp, a changed host key then fails the test. Then the failures an operator
meets: a server gone (and `run-due` reporting it), refused credentials, an untrusted certificate.

Servers come from tests/srv_storage.py and are shared by the session: every test uses its own repository.
Each restic process costs ~0.7 s of key derivation, so no step runs restic without asserting something new.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from helpers import ProcWatcher, out_json
from keys import ssh_key
from srv_storage import AZURITE_ACCOUNT, HttpProxy, sftp_command

AUTH_REFUSED = "authentication refused"


def unique(prefix: str = "repo") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def with_userinfo(url: str, user: str, password: str) -> str:
    """http://host:port -> http://user:password@host:port, both percent-encoded."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"


@dataclass
class Backend:
    type: str
    options: list[str]  # `destination create` options after --type and --name
    repo: str  # the repository as plain restic names it
    restic_args: list[str] = field(default_factory=list)  # plain restic needs these to reach/trust it
    restic_env: dict[str, str] = field(default_factory=dict)
    argv_secrets: dict[str, str] = field(default_factory=dict)  # never on a restic argv
    env_secrets: dict[str, str] = field(default_factory=dict)  # not in restic's environment either
    data: Path | None = None  # where the repository's files land on disk (to see it was created)
    # extra checks on the initialised, tested destination (run before the plain-restic check)
    then: Callable[..., None] | None = None


def _sftp_host_key_change(run_cli, state_dir: Path, server) -> None:
    """Trust on first use wrote the server's key to <state>/ssh/known_hosts; a different key there (as if the
    server's key changed, or a man in the middle) makes the next test fail with "host key"."""
    known_hosts = state_dir / "ssh" / "known_hosts"
    server_key = server.known_hosts.read_text().split()[2]
    pinned = known_hosts.read_text().split()  # [host (hashed if HashKnownHosts), key type, key]
    assert pinned[1:] == ["ssh-ed25519", server_key]
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    forged = f"{pinned[0]} {other}\n"
    known_hosts.write_text(forged)
    changed = run_cli("destination", "test", "offsite")
    assert changed.exit_code == 1, changed.output
    assert "host key" in changed.output, changed.output
    assert known_hosts.read_text() == forged, "a changed key is never re-pinned"


BACKENDS = ["sftp", "s3", "rest", "rest-basic-auth", "rest-bearer", "rest-tls-ca", "azure"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, restic_version) -> Iterator[Backend]:
    kind, name = request.param, unique()
    if kind == "sftp":
        srv = request.getfixturevalue("sshd_server")
        yield Backend(
            "sftp",
            ["--host", srv.host, "--user", srv.user, "--key", str(srv.client_key), "--port", str(srv.port),
             "--path", str(srv.home / name)],
            srv.repo(name),
            restic_args=["-o", f"sftp.command={sftp_command(srv)}"],
            data=srv.home / name,
            then=lambda run_cli, state_dir: _sftp_host_key_change(run_cli, state_dir, srv),
        )
    elif kind == "s3":
        srv = request.getfixturevalue("moto_s3")  # moto accepts any credentials: make them distinctive
        access, secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        yield Backend(
            "s3",
            ["--endpoint", srv.endpoint, "--region", srv.region, "--bucket", name, "--access-key", access,
             "--secret-key", secret, "--path", "panel1"],
            srv.repo(name, "panel1"),
            restic_env={"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": srv.region},
            argv_secrets={"access key": access, "secret key": secret},  # legitimately in restic's env
        )
    elif kind == "rest":
        srv = request.getfixturevalue("rest_plain")
        yield Backend("rest", ["--url", f"{srv.url}/{name}"], srv.repo(name), data=srv.data_dir / name)
    elif kind == "rest-basic-auth":
        srv = request.getfixturevalue("rest_basic_auth")  # password has '@' and ':': percent-encoded in --url
        yield Backend(
            "rest",
            ["--url", with_userinfo(srv.url, srv.user, srv.password) + f"/{name}"],
            srv.repo(name),
            argv_secrets={"REST password": srv.password},  # legitimately in RESTIC_REPOSITORY
            data=srv.data_dir / name,
        )
    elif kind == "rest-bearer":
        gate = request.getfixturevalue("bearer_gate")
        # restic cannot send a bearer token: plain restic goes through a token-injecting proxy
        injector = HttpProxy(gate.url, inject_token=gate.token)
        try:
            yield Backend(
                "rest",
                ["--url", f"{gate.url}/{name}", "--token", gate.token],
                f"rest:{injector.url}/{name}",
                argv_secrets={"token": gate.token},
                env_secrets={"token": gate.token},
                data=gate.upstream.data_dir / name,
            )
        finally:
            injector.stop()
        assert gate.requests_seen and all(ok for _, _, ok in gate.requests_seen), "every request carried the token"
    elif kind == "rest-tls-ca":
        srv = request.getfixturevalue("rest_tls_ca")
        yield Backend(
            "rest",
            ["--url", f"{srv.url}/{name}", "--cacert", str(srv.ca_cert)],
            srv.repo(name),
            restic_args=["--cacert", str(srv.ca_cert)],
            data=srv.data_dir / name,
        )
    elif kind == "azure":
        srv = request.getfixturevalue("azurite")
        yield Backend(
            "azure",
            ["--account-name", AZURITE_ACCOUNT, "--account-key", srv.account_key, "--container", name,
             "--path", "panel1"],
            srv.repo(name, "panel1"),
            restic_env=srv.env(),
            argv_secrets={"account key": srv.account_key},  # legitimately in restic's env
        )
    else:  # pragma: no cover
        raise AssertionError(kind)


def assert_secrets_kept(watcher: ProcWatcher, password: str, backend: Backend) -> None:
    assert len(watcher.seen) >= 2, f"expected to observe the restic children, saw {len(watcher.seen)}"
    argv_secrets = {"repository password": password, **backend.argv_secrets}
    env_secrets = {"repository password": password, **backend.env_secrets}
    for argv, env in watcher.seen.values():
        cmdline = "\0".join(argv)
        for what, value in argv_secrets.items():
            assert value not in cmdline, f"{what} on restic's argv: {argv[:6]}..."
        environ = "\0".join(f"{k}={v}" for k, v in env.items())
        for what, value in env_secrets.items():
            assert value not in environ, f"{what} in restic's environment"
        assert "RESTIC_PASSWORD" not in env
        assert any(a.startswith("/dev/fd/") for a in argv), "the password goes over a file descriptor"


def test_lifecycle(backend: Backend, run_cli, plain_restic, state_dir: Path) -> None:
    created = run_cli("destination", "create", "--type", backend.type, "--name", "offsite", *backend.options)
    assert created.exit_code == 0, created.output
    password = out_json(run_cli("destination", "get", "offsite", "--show-password", "--json"))["password"]

    with ProcWatcher() as watcher:
        first = run_cli("destination", "test", "offsite")
    assert first.exit_code == 0, first.output
    assert "initialised" in first.output
    if backend.data is not None:
        assert (backend.data / "config").is_file()
    assert_secrets_kept(watcher, password, backend)

    second = run_cli("destination", "test", "offsite")
    assert second.exit_code == 0, second.output
    assert "initialised" not in second.output
    assert out_json(run_cli("destination", "get", "offsite", "--json"))["last_test"] == "ok"

    if backend.then is not None:
        backend.then(run_cli, state_dir)

    opened = plain_restic(backend.repo, password, *backend.restic_args, "snapshots", "--json", env=backend.restic_env)
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout) == []

    deleted = run_cli("destination", "delete", "offsite")
    assert deleted.exit_code == 0, deleted.output
    assert out_json(run_cli("destination", "list", "--json")) == []
    if backend.data is not None:
        assert (backend.data / "config").is_file(), "deleting a destination never deletes repository data"


def test_rest_tls_self_signed(rest_tls_self_signed, run_cli, plain_restic, restic_version) -> None:
    """Without a TLS setting the test fails naming the certificate; --cacert <the server's certificate> on the
    destination makes it pass; so does JABALI_RESTIC_INSECURE_TLS=1 without any cacert."""
    srv, name = rest_tls_self_signed, unique()
    created = run_cli("destination", "create", "--type", "rest", "--name", "selfsigned", "--url", f"{srv.url}/{name}")
    assert created.exit_code == 0, created.output

    untrusted = run_cli("destination", "test", "selfsigned")
    assert untrusted.exit_code == 1, untrusted.output
    assert "TLS" in untrusted.output and "certificate" in untrusted.output
    assert "--cacert" in untrusted.output, "the message says how to fix it"
    assert not (srv.data_dir / name).exists()

    assert run_cli("destination", "update", "selfsigned", "--cacert", str(srv.cert)).exit_code == 0
    trusted = run_cli("destination", "test", "selfsigned")
    assert trusted.exit_code == 0, trusted.output
    assert "initialised" in trusted.output

    # --cacert "" clears the setting; the environment switch alone then skips verification
    assert run_cli("destination", "update", "selfsigned", "--cacert", "").exit_code == 0
    assert out_json(run_cli("destination", "get", "selfsigned", "--json"))["config"]["cacert"] == ""
    insecure = run_cli("destination", "test", "selfsigned", env={"JABALI_RESTIC_INSECURE_TLS": "1"})
    assert insecure.exit_code == 0, insecure.output
    assert "initialised" not in insecure.output

    password = out_json(run_cli("destination", "get", "selfsigned", "--show-password", "--json"))["password"]
    opened = plain_restic(srv.repo(name), password, "snapshots", "--json", cacert=str(srv.cert))
    assert opened.returncode == 0, opened.stderr
    assert run_cli("destination", "delete", "selfsigned").exit_code == 0


# -- failures ----------------------------------------------------------------------------------------------
def test_server_gone_is_unreachable_and_run_due_reports_it(rest_factory, run_cli, restic_version) -> None:
    srv = rest_factory()
    created = run_cli("destination", "create", "--type", "rest", "--name", "gone", "--url", f"{srv.url}/{unique()}")
    assert created.exit_code == 0, created.output
    rest_factory.stop(srv)

    result = run_cli("destination", "test", "gone")
    assert result.exit_code == 1, result.output
    assert "unreachable" in result.output

    tomorrow = (datetime.now(timezone.utc) + timedelta(hours=25)).isoformat(timespec="seconds")
    due = run_cli("run-due", env={"JABALI_NOW": tomorrow})
    assert due.exit_code == 3, due.output
    assert "gone" in due.output and "unreachable" in due.output
    events = out_json(run_cli("events", "list", "--json"))
    failed = [e for e in events if e["kind"] == "backup_failed" and e["destination"] == "gone"]
    assert len(failed) == 1, events
    assert "unreachable" in failed[0]["message"]


def test_rest_wrong_basic_auth_password(rest_basic_auth, run_cli, restic_version) -> None:
    srv = rest_basic_auth
    url = with_userinfo(srv.url, srv.user, "not-" + srv.password) + f"/{unique()}"
    assert run_cli("destination", "create", "--type", "rest", "--name", "wrongpw", "--url", url).exit_code == 0
    result = run_cli("destination", "test", "wrongpw")
    assert result.exit_code == 1, result.output
    assert AUTH_REFUSED in result.output
    assert "not-" + srv.password not in result.output


def test_rest_wrong_bearer_token(bearer_gate, run_cli, restic_version) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(16)
    created = run_cli("destination", "create", "--type", "rest", "--name", "wrongtoken", "--url",
                      f"{bearer_gate.url}/{unique()}", "--token", wrong)
    assert created.exit_code == 0, created.output
    result = run_cli("destination", "test", "wrongtoken")
    assert result.exit_code == 1, result.output
    assert AUTH_REFUSED in result.output
    assert wrong not in result.output
    assert bearer_gate.requests_seen and not any(ok for _, _, ok in bearer_gate.requests_seen)


def test_sftp_key_not_authorized(sshd_server, run_cli, tmp_path: Path, restic_version) -> None:
    stranger = ssh_key(tmp_path / "stranger_key")
    srv = sshd_server
    created = run_cli("destination", "create", "--type", "sftp", "--name", "stranger", "--host", srv.host,
                      "--user", srv.user, "--key", str(stranger), "--port", str(srv.port), "--path", unique())
    assert created.exit_code == 0, created.output
    # restic 0.14 sometimes loses ssh's "Permission denied" line (it relays ssh's stderr racily): jabali
    # reads ssh's own error log, so the verdict is the same on every run
    for _ in range(3):
        result = run_cli("destination", "test", "stranger")
        assert result.exit_code == 1, result.output
        assert AUTH_REFUSED in result.output and "Permission denied (publickey)" in result.output, result.output
