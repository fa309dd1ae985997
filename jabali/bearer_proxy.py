"""Loopback forwarding proxy that adds ``Authorization: Bearer <token>`` for restic.

restic's REST backend only speaks HTTP basic auth (taken from the URL userinfo).
Destinations of type "restic REST server" may however require a bearer token.
:class:`BearerProxy` bridges the two without the token ever reaching restic's
argv or environment:

* it listens on ``127.0.0.1:<random port>`` for the lifetime of one restic call;
* restic is pointed at ``rest:http://jabali:<nonce>@127.0.0.1:<port>/<prefix>``
  (via ``RESTIC_REPOSITORY``, never argv), where ``<nonce>`` is a one-time random
  secret, so other local users cannot ride on the proxy while it lives;
* every request carrying exactly ``Authorization: Basic base64("jabali:<nonce>")``
  is forwarded to the upstream with that header *replaced* by
  ``Authorization: Bearer <token>``; anything else gets ``401`` and never
  reaches the upstream.

Bodies are streamed in fixed-size chunks in both directions (pack uploads are
tens of MB), hop-by-hop headers are dropped and framing recomputed, the client
side speaks HTTP/1.1 keep-alive and every handler thread keeps one persistent
upstream connection (re-established when stale).

Upstream failures are answered with ``502`` and a short, token-free body naming
the cause class; the same text is kept in :attr:`BearerProxy.last_error` (and a
machine-readable class in :attr:`BearerProxy.last_error_kind`) because restic
itself only ever sees the 502.

Usage::

    with BearerProxy("https://backup.example.com:8443/acct-alice", token) as proxy:
        env = {..., "RESTIC_REPOSITORY": "rest:" + proxy.restic_url}
        subprocess.run(["restic", "snapshots", "--json"], env=env)
    if failed and proxy.last_error: report(proxy.last_error)

Standard library only.
"""

from __future__ import annotations

import base64
import hmac
import http.client
import secrets
import select
import socket
import socketserver
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

__all__ = [
    "BearerProxy",
    "ERR_UNREACHABLE",
    "ERR_TLS_UNTRUSTED",
    "ERR_TLS",
    "ERR_PROTOCOL",
]

#: ``last_error_kind`` values.
ERR_UNREACHABLE = "unreachable"
ERR_TLS_UNTRUSTED = "tls_untrusted"
ERR_TLS = "tls"
ERR_PROTOCOL = "protocol"

#: Size of the chunks bodies are streamed in (both directions).
CHUNK_SIZE = 256 * 1024

#: User name restic sends in its basic-auth header (the password is the nonce).
PROXY_USER = "jabali"

# RFC 7230 6.1 hop-by-hop headers, plus headers we always recompute/replace.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_DROP = _HOP_BY_HOP | {"authorization", "host", "content-length", "expect"}
_RESPONSE_DROP = _HOP_BY_HOP | {"content-length"}

_MAX_CHUNK_LINE = 4096


class _BadRequest(Exception):
    """Malformed request framing from the client (answered with 400)."""


class _ClientGone(Exception):
    """The client (restic) disconnected or sent a truncated body."""


class _UpstreamError(Exception):
    """Upstream failed; ``kind``/``message`` are token-free by construction."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _connection_tokens(headers: Any) -> set[str]:
    """Header names listed in ``Connection:`` (also hop-by-hop, RFC 7230 6.1)."""
    names: set[str] = set()
    for value in headers.get_all("Connection") or []:
        for item in value.split(","):
            item = item.strip().lower()
            if item:
                names.add(item)
    return names


class _ConnectTimeoutMixin:
    """http.client connection with separate connect (+TLS handshake) and I/O timeouts."""

    connect_timeout: float = 30.0
    io_timeout: float = 300.0

    def connect(self) -> None:
        self.timeout = self.connect_timeout  # type: ignore[attr-defined]
        super().connect()  # type: ignore[misc]  # TCP connect and, for https, the handshake
        self.sock.settimeout(self.io_timeout)  # type: ignore[attr-defined]
        self.timeout = self.io_timeout  # type: ignore[attr-defined]


class _HTTPConnection(_ConnectTimeoutMixin, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectTimeoutMixin, http.client.HTTPSConnection):
    pass


class BearerProxy:
    """Given an upstream REST URL and a token, serve a loopback HTTP proxy that forwards every
    request to the upstream with ``Authorization: Bearer <token>``; use as a context manager
    around one restic call.

    ``cacert`` / ``insecure_tls`` mirror restic's ``--cacert`` / ``--insecure-tls`` for an
    https upstream: by default the system CA store is used, with ``cacert`` only that PEM file
    is trusted, with ``insecure_tls`` nothing is verified.

    After (or during) the call, :attr:`last_error` holds a short description of the most
    recent upstream failure (``None`` if there was none), e.g.
    ``"upstream TLS certificate not trusted: self-signed certificate"`` or
    ``"upstream unreachable: connection refused"``, and :attr:`last_error_kind` one of
    ``"unreachable"``, ``"tls_untrusted"``, ``"tls"``, ``"protocol"``. Neither ever contains
    the token.
    """

    def __init__(
        self,
        upstream_url: str,
        token: str,
        *,
        cacert: str | None = None,
        insecure_tls: bool = False,
        connect_timeout: float = 30.0,
        io_timeout: float = 300.0,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("upstream URL must use http or https")
        if "@" in parts.netloc:
            raise ValueError("upstream URL must not contain userinfo (user:password@)")
        if parts.query or parts.fragment:
            raise ValueError("upstream URL must not contain a query or fragment")
        if not parts.hostname:
            raise ValueError("upstream URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("upstream URL has an invalid port") from None
        if not isinstance(token, str) or not token:
            raise ValueError("bearer token must be a non-empty string")
        if any(not (0x21 <= ord(c) <= 0x7E) for c in token):
            # Never echo the token: it must not appear in any message.
            raise ValueError("bearer token contains characters not allowed in an HTTP header")
        self.upstream_url = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, "", ""))
        self._scheme = scheme
        self._host = parts.hostname
        self._port = port if port is not None else (443 if scheme == "https" else 80)
        self._host_header = parts.netloc
        self._path_prefix = parts.path or "/"
        self._connect_timeout = float(connect_timeout)
        self._io_timeout = float(io_timeout)

        self._token = token
        self._upstream_auth = "Bearer " + token
        self._nonce = secrets.token_urlsafe(32)  # [A-Za-z0-9_-]: safe in URL userinfo
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{PROXY_USER}:{self._nonce}".encode("ascii")).decode("ascii")
        ).encode("ascii")

        self._ssl_context: ssl.SSLContext | None = None
        if scheme == "https":
            if insecure_tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif cacert is not None:
                ctx = ssl.create_default_context(cafile=cacert)
            else:
                ctx = ssl.create_default_context()
            self._ssl_context = ctx

        self.last_error: str | None = None
        self.last_error_kind: str | None = None
        self.upstream_errors = 0
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    # -- public API -----------------------------------------------------------------

    def __enter__(self) -> "BearerProxy":
        if self._server is not None:
            raise RuntimeError("BearerProxy is already running")
        server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="jabali-bearer-proxy",
            daemon=True,
        )
        self._server = server
        self._thread = thread
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, close listening, client and upstream sockets. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_active(timeout=2.0)
        if thread is not None:
            thread.join(timeout=2.0)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("BearerProxy is not running (use it as a context manager)")
        return int(self._server.server_address[1])

    @property
    def restic_url(self) -> str:
        """``http://jabali:<nonce>@127.0.0.1:<port>/<upstream path>``; pass it to restic as
        ``RESTIC_REPOSITORY=rest:<restic_url>`` (environment, never argv)."""
        return f"http://{PROXY_USER}:{self._nonce}@127.0.0.1:{self.port}{self._path_prefix}"

    def __repr__(self) -> str:
        state = f"port={self._server.server_address[1]}" if self._server else "stopped"
        return f"<BearerProxy upstream={self.upstream_url!r} {state}>"

    # -- internals used by the handler ------------------------------------------------

    def _record_error(self, err: _UpstreamError) -> None:
        with self._lock:
            self.last_error = err.message
            self.last_error_kind = err.kind
            self.upstream_errors += 1

    def _redact(self, text: str) -> str:
        if self._token in text:
            text = text.replace(self._token, "***")
        if self._nonce in text:
            text = text.replace(self._nonce, "***")
        return text

    def _classify(self, exc: BaseException) -> _UpstreamError:
        """Map an exception from talking to the upstream to a token-free error."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or exc.reason or "verification failed"
            return _UpstreamError(
                ERR_TLS_UNTRUSTED, self._redact(f"upstream TLS certificate not trusted: {detail}")
            )
        if isinstance(exc, ssl.SSLError):
            detail = exc.reason or type(exc).__name__
            return _UpstreamError(ERR_TLS, self._redact(f"upstream TLS error: {detail}"))
        if isinstance(exc, ConnectionRefusedError):
            return _UpstreamError(ERR_UNREACHABLE, "upstream unreachable: connection refused")
        if isinstance(exc, socket.gaierror):
            return _UpstreamError(ERR_UNREACHABLE, "upstream unreachable: host name not resolved")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return _UpstreamError(ERR_UNREACHABLE, "upstream unreachable: timed out")
        if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            return _UpstreamError(ERR_UNREACHABLE, "upstream unreachable: connection closed by upstream")
        if isinstance(exc, http.client.HTTPException):
            return _UpstreamError(
                ERR_PROTOCOL, f"upstream protocol error: {type(exc).__name__}"
            )
        if isinstance(exc, OSError):
            detail = exc.strerror or type(exc).__name__
            return _UpstreamError(ERR_UNREACHABLE, self._redact(f"upstream unreachable: {detail}"))
        return _UpstreamError(ERR_PROTOCOL, f"upstream error: {type(exc).__name__}")

    def _new_connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = _HTTPSConnection(self._host, self._port, context=self._ssl_context)
        else:
            conn = _HTTPConnection(self._host, self._port)
        conn.connect_timeout = self._connect_timeout  # type: ignore[attr-defined]
        conn.io_timeout = self._io_timeout  # type: ignore[attr-defined]
        conn.timeout = self._connect_timeout
        return conn


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, proxy: BearerProxy) -> None:
        self.proxy = proxy
        self._active: set[_ProxyHandler] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Default prints a traceback to stderr; stay silent (messages could in theory
        # carry request data). Upstream failures are recorded on the proxy object.
        pass

    def register(self, handler: "_ProxyHandler") -> None:
        with self._active_lock:
            self._active.add(handler)

    def unregister(self, handler: "_ProxyHandler") -> None:
        with self._active_lock:
            self._active.discard(handler)

    def close_active(self, timeout: float) -> None:
        with self._active_lock:
            handlers = list(self._active)
        for h in handlers:
            h.abort()
        for h in handlers:
            if h.thread is not threading.current_thread():
                h.thread.join(timeout)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jabali-bearer-proxy"
    sys_version = ""
    timeout = 600  # idle keep-alive / stalled body read from restic
    server: _ProxyServer

    # -- lifecycle ----------------------------------------------------------------

    def setup(self) -> None:
        self.thread = threading.current_thread()
        self.upstream: http.client.HTTPConnection | None = None
        self.server.register(self)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._drop_upstream()
            self.server.unregister(self)

    def abort(self) -> None:
        """Called from another thread on proxy shutdown: unblock this handler."""
        for sock in (self.request, getattr(self.upstream, "sock", None)):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # never log (and never to stderr)

    # -- auth -----------------------------------------------------------------------

    def _authorized(self) -> bool:
        values = self.headers.get_all("Authorization") or []
        if len(values) != 1:
            return False
        got = values[0].strip().encode("latin-1", "replace")
        return hmac.compare_digest(got, self.server.proxy._expected_auth)

    def _send_simple(self, code: int, body: str, *, close: bool, extra: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        if close:
            self.close_connection = True
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _send_unauthorized(self) -> None:
        # Do not read the body: answer and close so the connection cannot desync.
        self._send_simple(
            401,
            "jabali bearer proxy: unauthorized\n",
            close=True,
            extra={"WWW-Authenticate": 'Basic realm="jabali"'},
        )

    def handle_expect_100(self) -> bool:
        if not self._authorized():
            self._send_unauthorized()
            return False
        return super().handle_expect_100()

    # -- methods ----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_OPTIONS = do_GET
    do_PATCH = do_GET

    # -- the proxy --------------------------------------------------------------------

    def _drop_upstream(self) -> None:
        conn, self.upstream = self.upstream, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _get_upstream(self) -> tuple[http.client.HTTPConnection, bool]:
        """Return (connection, reused). A reused idle connection that became readable
        (upstream closed it, or sent junk) is discarded before use."""
        conn = self.upstream
        if conn is not None and conn.sock is not None:
            sock = conn.sock
            stale = False
            try:
                if isinstance(sock, ssl.SSLSocket) and sock.pending():
                    stale = True
                else:
                    readable, _, _ = select.select([sock], [], [], 0)
                    stale = bool(readable)
            except (OSError, ValueError):
                stale = True
            if not stale:
                return conn, True
            self._drop_upstream()
        elif conn is not None:
            self._drop_upstream()
        conn = self.server.proxy._new_connection()
        self.upstream = conn
        return conn, False

    def _request_framing(self) -> tuple[str, int]:
        """('chunked', 0) | ('length', n) | ('none', 0) for the client request body."""
        te_values = self.headers.get_all("Transfer-Encoding") or []
        if te_values:
            codings = [c.strip().lower() for v in te_values for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _BadRequest("unsupported Transfer-Encoding")
            return "chunked", 0
        cl_values = self.headers.get_all("Content-Length") or []
        if cl_values:
            if len(set(v.strip() for v in cl_values)) != 1:
                raise _BadRequest("conflicting Content-Length")
            raw = cl_values[0].strip()
            if not raw.isdigit():
                raise _BadRequest("invalid Content-Length")
            return "length", int(raw)
        return "none", 0

    def _iter_request_body(self, framing: str, length: int) -> Iterator[bytes]:
        try:
            yield from self._iter_request_body_raw(framing, length)
        except OSError:  # reset / timeout while reading from restic
            raise _ClientGone() from None

    def _iter_request_body_raw(self, framing: str, length: int) -> Iterator[bytes]:
        rfile = self.rfile
        if framing == "length":
            remaining = length
            while remaining > 0:
                data = rfile.read(min(remaining, CHUNK_SIZE))
                if not data:
                    raise _ClientGone()
                remaining -= len(data)
                yield data
        elif framing == "chunked":
            while True:
                line = rfile.readline(_MAX_CHUNK_LINE + 1)
                if not line:
                    raise _ClientGone()
                if len(line) > _MAX_CHUNK_LINE or not line.endswith(b"\n"):
                    raise _BadRequest("chunk size line too long")
                size_txt = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_txt, 16)
                except ValueError:
                    raise _BadRequest("invalid chunk size") from None
                if size < 0:
                    raise _BadRequest("invalid chunk size")
                if size == 0:
                    # trailer section: discard until the empty line
                    while True:
                        t = rfile.readline(_MAX_CHUNK_LINE + 1)
                        if not t:
                            raise _ClientGone()
                        if t in (b"\r\n", b"\n"):
                            return
                remaining = size
                while remaining > 0:
                    data = rfile.read(min(remaining, CHUNK_SIZE))
                    if not data:
                        raise _ClientGone()
                    remaining -= len(data)
                    yield data
                crlf = rfile.readline(3)
                if crlf not in (b"\r\n", b"\n"):
                    raise _BadRequest("missing CRLF after chunk")

    def _upstream_headers(self, framing: str, length: int) -> list[tuple[str, str]]:
        proxy = self.server.proxy
        drop = _REQUEST_DROP | _connection_tokens(self.headers)
        out: list[tuple[str, str]] = [("Host", proxy._host_header)]
        for name, value in self.headers.items():
            if name.lower() in drop:
                continue
            out.append((name, value))
        out.append(("Authorization", proxy._upstream_auth))
        if framing == "length":
            out.append(("Content-Length", str(length)))
        elif framing == "chunked":
            out.append(("Transfer-Encoding", "chunked"))
        elif self.command in ("POST", "PUT", "PATCH"):
            out.append(("Content-Length", "0"))
        return out

    def _send_upstream_request(
        self,
        conn: http.client.HTTPConnection,
        headers: list[tuple[str, str]],
        framing: str,
        prebuffered: bytes | None,
        body: Iterator[bytes] | None,
    ) -> None:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        if prebuffered is not None:
            if prebuffered:
                self._upstream_send(conn, prebuffered)
        elif body is not None and framing == "length":
            for data in body:
                self._upstream_send(conn, data)
        elif body is not None and framing == "chunked":
            for data in body:
                self._upstream_send(conn, b"%X\r\n" % len(data) + data + b"\r\n")
            self._upstream_send(conn, b"0\r\n\r\n")

    @staticmethod
    def _upstream_send(conn: http.client.HTTPConnection, data: bytes) -> None:
        try:
            conn.send(data)
        except OSError as exc:
            raise _UpstreamSendError(exc) from exc

    def _drain(self, body: Iterator[bytes] | None) -> None:
        """Discard the unread rest of restic's request body so the client connection stays
        in sync (restic is authenticated at this point); close it if that fails."""
        if body is None:
            return
        try:
            for _ in body:
                pass
        except (_ClientGone, _BadRequest):
            self.close_connection = True

    def _proxy(self) -> None:
        proxy = self.server.proxy
        if not self._authorized():
            self._send_unauthorized()
            return
        if not self.path.startswith("/"):
            self._send_simple(400, "jabali bearer proxy: bad request target\n", close=True)
            return
        try:
            framing, length = self._request_framing()
        except _BadRequest as exc:
            self._send_simple(400, f"jabali bearer proxy: {exc}\n", close=True)
            return
        headers = self._upstream_headers(framing, length)

        # Small bodies (locks, indexes, snapshots, keys, config) are read up front so the
        # request can be replayed once if a kept-alive upstream connection turns out dead.
        # Larger ones (pack files) are streamed chunk by chunk, never held in memory.
        prebuffered: bytes | None = None
        body: Iterator[bytes] | None = None
        if framing == "none":
            prebuffered = b""
        elif framing == "length" and length <= CHUNK_SIZE:
            try:
                prebuffered = b"".join(self._iter_request_body(framing, length))
            except _ClientGone:
                self.close_connection = True
                return
        else:
            body = self._iter_request_body(framing, length)
        replayable = prebuffered is not None

        resp: http.client.HTTPResponse | None = None
        attempt = 0
        while True:
            attempt += 1
            conn, reused = self._get_upstream()
            try:
                self._send_upstream_request(conn, headers, framing, prebuffered, body)
                resp = conn.getresponse()
                break
            except _ClientGone:
                self._drop_upstream()
                self.close_connection = True
                return
            except _BadRequest as exc:
                self._drop_upstream()
                self._send_simple(400, f"jabali bearer proxy: {exc}\n", close=True)
                return
            except Exception as exc:  # noqa: BLE001 - any upstream failure -> 502
                cause: BaseException = exc
                if isinstance(exc, _UpstreamSendError) and exc.__cause__ is not None:
                    cause = exc.__cause__
                    # The upstream may have answered early (e.g. 401/413) and closed
                    # while we were still uploading: relay that answer if we can read it.
                    early = self._early_response(conn)
                    if early is not None:
                        self._drain(body)
                        resp = early
                        break
                self._drop_upstream()
                # A kept-alive connection may have been closed by the upstream just as we
                # reused it: retry once on a fresh connection if the body can be replayed.
                if (
                    reused
                    and replayable
                    and attempt == 1
                    and isinstance(cause, (OSError, http.client.RemoteDisconnected, http.client.BadStatusLine))
                    and not isinstance(cause, ssl.SSLError)
                ):
                    continue
                err = proxy._classify(cause)
                proxy._record_error(err)
                self._drain(body)
                self._send_simple(502, f"jabali bearer proxy: {err.message}\n", close=False)
                return

        self._relay_response(resp)

    @staticmethod
    def _early_response(conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
        try:
            if conn.sock is not None:
                conn.sock.settimeout(5.0)
            resp = conn.getresponse()
        except Exception:  # noqa: BLE001
            return None
        resp.will_close = True  # type: ignore[misc]  # never reuse this upstream connection
        return resp

    def _relay_response(self, resp: http.client.HTTPResponse) -> None:
        proxy = self.server.proxy
        status = resp.status
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        drop = _RESPONSE_DROP | _connection_tokens(resp.headers)

        try:
            self.send_response_only(status, resp.reason)
            for name, value in resp.headers.items():
                if name.lower() in drop:
                    continue
                self.send_header(name, value)
            upstream_cl = resp.headers.get("Content-Length")
            if no_body:
                # HEAD: restic uses Content-Length of HEAD as the file size — forward it.
                if self.command == "HEAD" and upstream_cl is not None and not resp.chunked:
                    self.send_header("Content-Length", upstream_cl.strip())
                mode = "none"
            elif not resp.chunked and resp.length is not None:
                self.send_header("Content-Length", str(resp.length))
                mode = "length"
            else:
                self.send_header("Transfer-Encoding", "chunked")
                mode = "chunked"
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
        except OSError:
            self.close_connection = True
            self._drop_upstream()
            return

        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        try:
            if mode != "none":
                while True:
                    try:
                        n = resp.readinto(buf)
                    except Exception as exc:  # noqa: BLE001
                        err = proxy._classify(exc)
                        proxy._record_error(err)
                        raise _ClientGone() from None  # cannot signal an error any more: abort
                    if not n:
                        break
                    if mode == "chunked":
                        self.wfile.write(b"%X\r\n" % n + bytes(view[:n]) + b"\r\n")
                    else:
                        self.wfile.write(view[:n])
                if mode == "chunked":
                    self.wfile.write(b"0\r\n\r\n")
                if mode == "length" and resp.length:
                    # http.client does not raise on a short Content-Length body.
                    proxy._record_error(
                        _UpstreamError(ERR_UNREACHABLE, "upstream unreachable: connection closed mid-response")
                    )
                    raise _ClientGone()
            else:
                resp.read()  # no body; marks the response complete
        except (_ClientGone, OSError):
            self.close_connection = True
            self._drop_upstream()
            return
        finally:
            view.release()

        if resp.will_close:
            self._drop_upstream()
        resp.close()


class _UpstreamSendError(Exception):
    """Wraps an OSError raised while writing to the upstream (``__cause__``)."""
