"""Tests for jabali.bearer_proxy.BearerProxy.

Toy upstreams are http.server instances in threads; the end-to-end test drives the
real restic binary against `rclone serve restic` behind a bearer-token gate.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from jabali.bearer_proxy import BearerProxy

TOKEN = "tok-" + "S3cr3tBearer" * 3  # distinctive, easy to grep for leaks
PREFIX = "/acct-alice"


# --------------------------------------------------------------------------------------
# toy upstream
# --------------------------------------------------------------------------------------


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    te = handler.headers.get("Transfer-Encoding", "")
    if "chunked" in te.lower():
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


class ToyUpstream:
    """In-memory object store requiring `Authorization: Bearer TOKEN`."""

    def __init__(self, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.connections: set[tuple[str, int]] = set()
        self.sink_digests: dict[str, str] = {}
        self.lock = threading.Lock()
        toy = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                with toy.lock:
                    toy.connections.add(self.client_address)
                    toy.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": [(k, v) for k, v in self.headers.items()],
                        }
                    )
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    _read_body(self)
                    self._reply(401, b"no token\n")
                    return
                path = self.path
                if path.startswith(PREFIX + "/sink/") and self.command == "POST":
                    # Stream-hash without storing (memory test).
                    h = hashlib.sha256()
                    remaining = int(self.headers["Content-Length"])
                    while remaining:
                        data = self.rfile.read(min(remaining, 1 << 20))
                        remaining -= len(data)
                        h.update(data)
                    toy.sink_digests[path] = h.hexdigest()
                    self._reply(200)
                    return
                if path == PREFIX + "/reject-early":
                    # Answer without reading the (large) body, then drop the connection.
                    self.send_response(413)
                    self.send_header("Content-Length", "9")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"too large")
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_WR)
                    time.sleep(0.2)
                    self.close_connection = True
                    return
                if path == PREFIX + "/echo-headers":
                    body = json.dumps([(k, v) for k, v in self.headers.items()]).encode()
                    self._reply(200, body, {"Content-Type": "application/json", "X-Custom": "kept"})
                    return
                if path == PREFIX + "/chunked-response":
                    _read_body(self)
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"hello ", b"chunked ", b"world"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if self.command == "POST":
                    toy.objects[path] = _read_body(self)
                    self._reply(200)
                elif self.command in ("GET", "HEAD"):
                    if path not in toy.objects:
                        self._reply(404, b"not found\n")
                        return
                    data = toy.objects[path]
                    rng = self.headers.get("Range")
                    if rng:
                        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                        assert m
                        start = int(m.group(1))
                        end = int(m.group(2)) if m.group(2) else len(data) - 1
                        self._reply(
                            206,
                            data[start : end + 1],
                            {"Content-Range": f"bytes {start}-{end}/{len(data)}"},
                        )
                    else:
                        self._reply(200, data, {"Content-Type": "application/octet-stream"})
                elif self.command == "DELETE":
                    existed = toy.objects.pop(path, None) is not None
                    self._reply(200 if existed else 404)
                else:
                    self._reply(405)

            do_GET = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        if ssl_ctx is not None:
            self.server.socket = ssl_ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ToyUpstream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{PREFIX}"


def _proxy_conn(proxy: BearerProxy) -> tuple[http.client.HTTPConnection, dict[str, str]]:
    u = urllib.parse.urlsplit(proxy.restic_url)
    assert u.hostname == "127.0.0.1" and u.username == "jabali" and u.password
    auth = base64.b64encode(f"{u.username}:{u.password}".encode()).decode()
    return http.client.HTTPConnection("127.0.0.1", u.port, timeout=30), {"Authorization": f"Basic {auth}"}


def _req(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


@pytest.fixture
def upstream() -> Iterator[ToyUpstream]:
    with ToyUpstream() as up:
        yield up


# --------------------------------------------------------------------------------------
# (1) proxied methods against a toy upstream
# --------------------------------------------------------------------------------------


def test_restic_url_shape(upstream: ToyUpstream) -> None:
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        u = urllib.parse.urlsplit(proxy.restic_url)
        assert u.scheme == "http" and u.hostname == "127.0.0.1" and u.port == proxy.port
        assert u.path == PREFIX
        assert TOKEN not in proxy.restic_url
        assert TOKEN not in repr(proxy)
    with pytest.raises(RuntimeError):
        _ = proxy.restic_url


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        BearerProxy("https://user:pw@example.com/repo", TOKEN)
    with pytest.raises(ValueError):
        BearerProxy("ftp://example.com/repo", TOKEN)
    with pytest.raises(ValueError):
        BearerProxy("https://example.com/repo?x=1", TOKEN)
    with pytest.raises(ValueError) as ei:
        BearerProxy("https://example.com/repo", TOKEN + "\r\nX-Evil: 1")
    assert TOKEN not in str(ei.value)
    with pytest.raises(ValueError):
        BearerProxy("https://example.com/repo", "")


def test_methods_roundtrip(upstream: ToyUpstream) -> None:
    small = os.urandom(1000)
    big = os.urandom(20 * 1024 * 1024 + 123)
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        v2 = {**auth, "Accept": "application/vnd.x.restic.rest.v2"}

        assert _req(conn, "POST", f"{PREFIX}/data/small", small, auth)[0] == 200
        assert upstream.objects[f"{PREFIX}/data/small"] == small

        st, hdr, body = _req(conn, "POST", f"{PREFIX}/data/big", big, {**auth, "Content-Type": "application/octet-stream"})
        assert st == 200
        assert upstream.objects[f"{PREFIX}/data/big"] == big

        st, hdr, body = _req(conn, "GET", f"{PREFIX}/data/big", None, v2)
        assert st == 200 and body == big and int(hdr["content-length"]) == len(big)

        st, hdr, body = _req(conn, "HEAD", f"{PREFIX}/data/big", None, auth)
        assert st == 200 and body == b"" and int(hdr["content-length"]) == len(big)

        st, hdr, body = _req(conn, "GET", f"{PREFIX}/data/big", None, {**auth, "Range": "bytes=1000-1999"})
        assert st == 206 and body == big[1000:2000]
        assert hdr["content-range"] == f"bytes 1000-1999/{len(big)}"

        st, _, body = _req(conn, "GET", f"{PREFIX}/data/small", None, {**auth, "Range": "bytes=10-"})
        assert st == 206 and body == small[10:]

        # chunked POST (generator body => http.client uses Transfer-Encoding: chunked)
        parts = [os.urandom(n) for n in (1, 70000, 0, 300000, 5)]
        st, _, _ = _req(conn, "POST", f"{PREFIX}/data/chunked", (p for p in parts if p), auth)
        assert st == 200
        assert upstream.objects[f"{PREFIX}/data/chunked"] == b"".join(parts)
        chunked_req = [r for r in upstream.requests if r["path"] == f"{PREFIX}/data/chunked"][-1]
        names = {k.lower() for k, _ in chunked_req["headers"]}
        assert "transfer-encoding" in names

        # chunked response from upstream is re-framed for the client
        st, hdr, body = _req(conn, "GET", f"{PREFIX}/chunked-response", None, auth)
        assert st == 200 and body == b"hello chunked world"

        st, _, _ = _req(conn, "DELETE", f"{PREFIX}/data/small", None, auth)
        assert st == 200 and f"{PREFIX}/data/small" not in upstream.objects
        assert _req(conn, "GET", f"{PREFIX}/data/small", None, auth)[0] == 404
        assert _req(conn, "HEAD", f"{PREFIX}/data/small", None, auth)[0] == 404

        # headers: Accept passes through unchanged, bearer replaces basic, hop-by-hop dropped
        st, hdr, body = _req(conn, "GET", f"{PREFIX}/echo-headers", None, {**v2, "Keep-Alive": "timeout=5", "X-Other": "y"})
        assert st == 200 and hdr["x-custom"] == "kept"
        seen = json.loads(body)
        seen_l = [(k.lower(), v) for k, v in seen]
        assert ("accept", "application/vnd.x.restic.rest.v2") in seen_l
        assert ("authorization", f"Bearer {TOKEN}") in seen_l
        assert [v for k, v in seen_l if k == "authorization"] == [f"Bearer {TOKEN}"]
        assert ("host", f"127.0.0.1:{upstream.port}") in seen_l
        assert ("x-other", "y") in seen_l
        assert "keep-alive" not in dict(seen_l)
        conn.close()

    assert proxy.last_error is None
    # every request reached upstream with the bearer token and never with the basic auth
    for r in upstream.requests:
        auths = [v for k, v in r["headers"] if k.lower() == "authorization"]
        assert auths == [f"Bearer {TOKEN}"], r
    # keep-alive on both sides: a single client connection => a single upstream connection
    assert len(upstream.connections) == 1


def test_streaming_memory_bounded(upstream: ToyUpstream) -> None:
    """A 32 MiB upload streamed from a generator must not be buffered in the proxy."""
    import tracemalloc

    piece = os.urandom(1 << 20)
    n = 32
    expected = hashlib.sha256(piece * n).hexdigest()
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            conn.putrequest("POST", f"{PREFIX}/sink/x")
            conn.putheader("Authorization", auth["Authorization"])
            conn.putheader("Content-Length", str(len(piece) * n))
            conn.endheaders()
            for _ in range(n):
                conn.send(piece)
            r = conn.getresponse()
            r.read()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r.status == 200
        conn.close()
    assert upstream.sink_digests[f"{PREFIX}/sink/x"] == expected
    assert peak < 12 * 1024 * 1024, peak


def test_early_upstream_answer_is_relayed(upstream: ToyUpstream) -> None:
    """Upstream rejects a big upload before reading it: restic should see that status."""
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        st, _, body = _req(conn, "POST", f"{PREFIX}/reject-early", os.urandom(16 * 1024 * 1024), auth)
        assert (st, body) == (413, b"too large")
        # the client connection is still in sync
        assert _req(conn, "POST", f"{PREFIX}/after", b"ok", auth)[0] == 200
        conn.close()
    assert upstream.objects[f"{PREFIX}/after"] == b"ok"


def test_exit_closes_client_connections(upstream: ToyUpstream) -> None:
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        assert _req(conn, "GET", f"{PREFIX}/nope", None, auth)[0] == 404
        server = proxy._server
        assert server is not None and len(server._active) == 1
        handler = next(iter(server._active))
        port = proxy.port
    # proxy gone: the idle keep-alive connection was shut down and its thread ended
    assert not handler.thread.is_alive()
    assert handler.upstream is None
    with pytest.raises((OSError, http.client.HTTPException)):
        _req(conn, "GET", f"{PREFIX}/nope", None, auth)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_stale_upstream_connection_is_replaced(upstream: ToyUpstream) -> None:
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        assert _req(conn, "POST", f"{PREFIX}/a", b"x", auth)[0] == 200
        # restart the upstream server's connections: kill server-side sockets by
        # shutting down and re-creating the upstream on the same port is racy, so
        # instead close the proxy handler's upstream connection from underneath it.
        server = proxy._server
        assert server is not None
        for h in list(server._active):
            if h.upstream is not None and h.upstream.sock is not None:
                h.upstream.sock.shutdown(socket.SHUT_RDWR)
        assert _req(conn, "GET", f"{PREFIX}/a", None, auth)[2] == b"x"
        assert _req(conn, "POST", f"{PREFIX}/b", b"y", auth)[0] == 200
        conn.close()
    assert proxy.last_error is None


# --------------------------------------------------------------------------------------
# (2) nonce required
# --------------------------------------------------------------------------------------


def test_requests_without_nonce_are_rejected(upstream: ToyUpstream) -> None:
    with BearerProxy(upstream.url(), TOKEN) as proxy:
        port = proxy.port
        bad_auths: list[dict[str, str]] = [
            {},
            {"Authorization": "Basic " + base64.b64encode(b"jabali:wrong").decode()},
            {"Authorization": f"Bearer {TOKEN}"},
        ]
        for headers in bad_auths:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            st, hdr, body = _req(c, "GET", f"{PREFIX}/config", None, headers)
            assert st == 401
            assert TOKEN.encode() not in body
            c.close()
        # POST with a body and no nonce: 401, connection closed, upstream untouched
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        st, _, _ = _req(c, "POST", f"{PREFIX}/data/x", b"z" * 100000, {})
        assert st == 401
        c.close()
        # correct nonce but also a duplicate Authorization header: rejected
        _, auth = _proxy_conn(proxy)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(
            f"GET {PREFIX}/config HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
            f"Authorization: Basic Zm9vOmJhcg==\r\n\r\n".encode()
        )
        assert s.recv(100).startswith(b"HTTP/1.1 401")
        s.close()
    assert upstream.requests == []


# --------------------------------------------------------------------------------------
# (3) upstream down
# --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_upstream_down_gives_502() -> None:
    port = _free_port()
    with BearerProxy(f"http://127.0.0.1:{port}{PREFIX}", TOKEN) as proxy:
        conn, auth = _proxy_conn(proxy)
        st, _, body = _req(conn, "GET", f"{PREFIX}/config", None, auth)
        assert st == 502
        assert b"upstream unreachable" in body
        assert TOKEN.encode() not in body
        # a large (streamed) POST against a dead upstream also yields 502; the proxy
        # drains the body, so the client connection stays usable
        st, _, body = _req(conn, "POST", f"{PREFIX}/data/x", os.urandom(2 * 1024 * 1024), auth)
        assert st == 502
        st, _, body = _req(conn, "HEAD", f"{PREFIX}/config", None, auth)
        assert st == 502
        conn.close()
    assert proxy.last_error is not None and "unreachable" in proxy.last_error
    assert proxy.last_error_kind == "unreachable"
    assert TOKEN not in proxy.last_error


# --------------------------------------------------------------------------------------
# (5) https upstream with a self-signed certificate
# --------------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jabali-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_self_signed(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    with ToyUpstream(sctx) as up:
        url = up.url("https")

        with BearerProxy(url, TOKEN) as proxy:
            conn, auth = _proxy_conn(proxy)
            st, _, body = _req(conn, "GET", f"{PREFIX}/config", None, auth)
            assert st == 502
            assert b"certificate not trusted" in body and TOKEN.encode() not in body
            conn.close()
        assert proxy.last_error_kind == "tls_untrusted"
        assert proxy.last_error and "certificate" in proxy.last_error and "TLS" in proxy.last_error
        assert up.requests == []

        for kwargs in ({"cacert": str(cert)}, {"insecure_tls": True}):
            with BearerProxy(url, TOKEN, **kwargs) as proxy:  # type: ignore[arg-type]
                conn, auth = _proxy_conn(proxy)
                assert _req(conn, "POST", f"{PREFIX}/config", b"cfg", auth)[0] == 200
                st, _, body = _req(conn, "GET", f"{PREFIX}/config", None, auth)
                assert st == 200 and body == b"cfg"
                conn.close()
            assert proxy.last_error is None, kwargs
        assert all(
            dict((k.lower(), v) for k, v in r["headers"])["authorization"] == f"Bearer {TOKEN}" for r in up.requests
        )
        assert len(up.connections) == 2  # one persistent TLS connection per proxy


# --------------------------------------------------------------------------------------
# (4) end-to-end with real restic + rclone serve restic behind a bearer gate
# --------------------------------------------------------------------------------------


class BearerGate:
    """Minimal reverse proxy demanding `Bearer TOKEN` (401 otherwise), forwarding to rclone."""

    def __init__(self, backend_port: int) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]]]] = []
        self.rejected = 0
        gate = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _handle(self) -> None:
                gate.seen.append((self.command, self.path, list(self.headers.items())))
                body = _read_body(self)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    gate.rejected += 1
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                fwd = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("authorization", "host", "transfer-encoding", "content-length", "connection")
                }
                c = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=60)
                c.request(self.command, self.path, body=body if self.command in ("POST", "PUT") else None, headers=fwd)
                r = c.getresponse()
                data = r.read()
                c.close()
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else r.getheader("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone exited early: {proc.stderr.read() if proc.stderr else b''!r}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("rclone serve restic did not come up")


def test_end_to_end_real_restic(tmp_path: Path) -> None:
    restic = shutil.which("restic")
    rclone = shutil.which("rclone") or ("/usr/bin/rclone" if os.path.exists("/usr/bin/rclone") else None)
    if not restic or not rclone:
        reason = f"restic or rclone not installed (restic={restic}, rclone={rclone})"
        print("SKIP:", reason)
        pytest.skip(reason)

    repo_dir = tmp_path / "rclone-root"
    repo_dir.mkdir()
    rclone_conf = tmp_path / "rclone.conf"
    rclone_conf.write_text("")
    rport = _free_port()
    rclone_proc = subprocess.Popen(
        [rclone, "serve", "restic", str(repo_dir), "--addr", f"127.0.0.1:{rport}"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "RCLONE_CONFIG": str(rclone_conf)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    gate: BearerGate | None = None
    try:
        _wait_port(rport, rclone_proc)
        gate = BearerGate(rport)

        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "a.txt").write_text("hello jabali\n")
        (src / "sub" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
        (src / "sub" / "empty").write_bytes(b"")
        restore = tmp_path / "restore"

        upstream_url = f"http://127.0.0.1:{gate.port}{PREFIX}/"
        with BearerProxy(upstream_url, TOKEN) as proxy:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp_path),
                "RESTIC_REPOSITORY": "rest:" + proxy.restic_url,
                "RESTIC_PASSWORD": "repo-password",
                "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
            }

            def run(*args: str) -> str:
                argv = [restic, *args]
                assert not any(TOKEN in a for a in argv)
                assert not any(TOKEN in k or TOKEN in v for k, v in env.items())
                p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                # The exec has completed when Popen returns: inspect the live process.
                try:
                    cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes()
                    environ = Path(f"/proc/{p.pid}/environ").read_bytes()
                except OSError:
                    cmdline = environ = b""
                out, err = p.communicate(timeout=120)
                assert TOKEN.encode() not in cmdline and TOKEN.encode() not in environ
                if cmdline:  # read while alive (not a zombie yet)
                    assert b"restic" in cmdline
                assert TOKEN.encode() not in out + err
                assert p.returncode == 0, (args, err.decode(errors="replace"), proxy.last_error)
                return out.decode()

            run("init")
            run("backup", "--host", "jabali-test", str(src))
            snaps = json.loads(run("snapshots", "--json"))
            assert len(snaps) == 1 and snaps[0]["paths"] == [str(src)]
            run("restore", "latest", "--target", str(restore))
            run("check")

        assert proxy.last_error is None
        restored = restore / str(src).lstrip("/")
        for rel in ("a.txt", "sub/b.bin", "sub/empty"):
            assert (restored / rel).read_bytes() == (src / rel).read_bytes(), rel
        # the repository really lives under the prefix on the rclone side
        assert (repo_dir / PREFIX.strip("/") / "config").exists()
        # every request through the gate carried the bearer token, none was rejected
        assert gate.rejected == 0 and len(gate.seen) > 5
        for _, _, headers in gate.seen:
            assert [v for k, v in headers if k.lower() == "authorization"] == [f"Bearer {TOKEN}"]
    finally:
        if gate is not None:
            gate.close()
        rclone_proc.terminate()
        try:
            rclone_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rclone_proc.kill()
            rclone_proc.wait()
        if rclone_proc.stderr is not None:
            rclone_proc.stderr.close()
