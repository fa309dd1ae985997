"""Smoke tests for the storage-server fixtures in srv_storage.py: plain restic init + snapshots against each."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Optional

import pytest

from srv_storage import (AzureServer, BearerGate, HttpProxy, RestServer, S3Server, SshdServer, sftp_command)

PASSWORD = "x"


def restic(*args: str, env: Optional[dict[str, str]] = None, timeout: float = 120) -> subprocess.CompletedProcess:
    if not shutil.which("restic"):
        pytest.skip("restic not found: run scripts/install.d/20-storage-servers.sh")
    return subprocess.run(["restic", "--no-cache", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "RESTIC_PASSWORD": PASSWORD, **(env or {})})


def init_and_list(args: list[str], env: Optional[dict[str, str]] = None) -> None:
    r = restic(*args, "init", env=env)
    assert r.returncode == 0, r.stderr
    r = restic(*args, "snapshots", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_sftp(sshd_server: SshdServer) -> None:
    assert oct(sshd_server.client_key.stat().st_mode & 0o777) == "0o600"
    assert f"[127.0.0.1]:{sshd_server.port}" in sshd_server.known_hosts.read_text()
    name = unique("repo")
    init_and_list(["-r", sshd_server.repo(name), "-o", f"sftp.command={sftp_command(sshd_server)}"])
    assert (sshd_server.home / name / "config").is_file()


def test_sftp_relative_path_is_under_home(sshd_server: SshdServer) -> None:
    name = unique("rel")
    repo = f"sftp:{sshd_server.user}@{sshd_server.host}:{name}"
    init_and_list(["-r", repo, "-o", f"sftp.command={sftp_command(sshd_server)}"])
    assert (sshd_server.home / name / "config").is_file()


def test_s3_moto(moto_s3: S3Server) -> None:
    init_and_list(["-r", moto_s3.repo(unique("bucket"), "acct")], env=moto_s3.env())


def test_rest_plain(rest_plain: RestServer) -> None:
    name = unique("repo")
    init_and_list(["-r", rest_plain.repo(name)])
    assert (rest_plain.data_dir / name / "config").is_file()


def test_rest_basic_auth(rest_basic_auth: RestServer) -> None:
    name = unique("repo")
    init_and_list(["-r", rest_basic_auth.repo(name)])
    r = restic("-r", rest_basic_auth.repo(name, with_credentials=False), "snapshots")
    assert r.returncode == 1 and "unexpected HTTP response (401)" in r.stderr, r.stderr


def test_rest_tls_ca(rest_tls_ca: RestServer) -> None:
    assert rest_tls_ca.url.startswith("https://") and rest_tls_ca.ca_cert
    name = unique("repo")
    init_and_list([*rest_tls_ca.restic_args(), "-r", rest_tls_ca.repo(name)])
    r = restic("-r", rest_tls_ca.repo(name), "snapshots")  # without --cacert
    assert r.returncode == 1 and "x509: certificate signed by unknown authority" in r.stderr, r.stderr


def test_rest_tls_self_signed(rest_tls_self_signed: RestServer) -> None:
    assert rest_tls_self_signed.cert and rest_tls_self_signed.ca_cert is None
    init_and_list(["--cacert", str(rest_tls_self_signed.cert), "-r", rest_tls_self_signed.repo(unique("repo"))])


def test_azurite(azurite: AzureServer) -> None:
    init_and_list(["-r", azurite.repo(unique("ctr"), "acct")], env=azurite.env())


def test_bearer_gate_rejects_restic_without_token(bearer_gate: BearerGate) -> None:
    r = restic("-r", bearer_gate.repo(unique("repo")), "snapshots")
    assert r.returncode == 1 and "unexpected HTTP response (401)" in r.stderr, r.stderr
    assert bearer_gate.requests_seen and not any(ok for _, _, ok in bearer_gate.requests_seen)


def test_bearer_gate_proxies_http(bearer_gate: BearerGate) -> None:
    repo = unique("repo")
    auth = {"Authorization": f"Bearer {bearer_gate.token}"}
    conn = http.client.HTTPConnection(bearer_gate.url.removeprefix("http://"), timeout=10)  # one keep-alive conn

    def call(method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
             chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
        conn.request(method, path, body=iter([body[:3], body[3:]]) if chunked and body else body,
                     headers={**auth, **(headers or {})}, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

    assert call("POST", f"/{repo}/?create=true")[0] == 200
    assert call("POST", f"/{repo}/config", b"hello")[0] == 200
    status, headers, body = call("HEAD", f"/{repo}/config")
    assert (status, headers.get("content-length"), body) == (200, "5", b"")
    status, _, body = call("GET", f"/{repo}/config", headers={"Range": "bytes=1-3"})
    assert (status, body) == (206, b"ell")
    blob = os.urandom(200_000)
    blob_id = hashlib.sha256(blob).hexdigest()
    assert call("POST", f"/{repo}/data/{blob_id}", blob, chunked=True)[0] == 200
    assert call("GET", f"/{repo}/data/{blob_id}")[2] == blob
    assert call("DELETE", f"/{repo}/data/{blob_id}")[0] == 200
    assert call("GET", f"/{repo}/data/{blob_id}")[0] == 404

    conn.request("GET", f"/{repo}/config", headers={"Authorization": "Bearer wrong"})
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("WWW-Authenticate")) == (401, 'Bearer realm="jabali-test"')
    resp.read()
    assert [ok for _, _, ok in bearer_gate.requests_seen] == [True] * 8 + [False]
    assert bearer_gate.requests_seen[0] == ("POST", f"/{repo}/?create=true", True)
    conn.close()
    assert (bearer_gate.upstream.data_dir / repo / "config").read_bytes() == b"hello"


def test_bearer_gate_carries_restic(bearer_gate: BearerGate) -> None:
    # restic cannot send bearer tokens itself: put a token-injecting proxy in front of the gate.
    injector = HttpProxy(bearer_gate.url, inject_token=bearer_gate.token)
    try:
        args = ["-r", f"rest:{injector.url}/{unique('repo')}"]
        init_and_list(args)
        src = Path(__file__)
        r = restic(*args, "backup", "-q", str(src))
        assert r.returncode == 0, r.stderr
        r = restic(*args, "check")
        assert r.returncode == 0, r.stderr
    finally:
        injector.stop()
    assert bearer_gate.requests_seen and all(ok for _, _, ok in bearer_gate.requests_seen)
