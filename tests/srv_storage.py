"""pytest plugin: real storage servers on 127.0.0.1 for restic-based tests.

Load with ``pytest_plugins = ["srv_storage"]`` (tests/ on sys.path) or ``pytest -p srv_storage``.

Fixtures (all session-scoped unless noted; each skips with a reason when its binary is missing):
  sshd_server           -> SshdServer   private sshd, key-only auth, user ``jabali-sftp-test``
  moto_s3               -> S3Server     moto server (in-memory S3, accepts any credentials)
  rest_factory          -> RestFactory  starts more ``rclone serve restic`` servers on demand
  rest_plain / rest_basic_auth / rest_tls_ca / rest_tls_self_signed -> RestServer
  tls_certs             -> TlsCerts     test CA + CA-signed server cert + self-signed cert
  bearer_gate_server    -> BearerGate   bearer-token reverse proxy in front of its own rclone REST server
  bearer_gate (function)-> BearerGate   same server, ``requests_seen`` cleared before the test
  azurite               -> AzureServer  azurite-blob on the fixed 127.0.0.1:10000 (restic 0.14 emulator mode)

Servers are shared by the whole session: give every test its own repository name/bucket/container.
Set JABALI_TEST_REQUIRE_SERVERS=1 (e.g. in CI) to turn "binary missing" skips into failures.
Install everything with scripts/install.d/20-storage-servers.sh.
"""
from __future__ import annotations

import datetime
import http.client
import http.server
import importlib.util
import ipaddress
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
INSTALL_HINT = "run scripts/install.d/20-storage-servers.sh"

SFTP_USER = "jabali-sftp-test"
# Azurite/Azure SDK well-known emulator credentials. restic 0.14 only talks to azurite when the account name is
# exactly devstoreaccount1; it then uses http://127.0.0.1:10000 and this key, ignoring AZURE_ACCOUNT_KEY.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_PORT = 10000


# ----------------------------------------------------------------------------------------------------------
# dataclasses handed to tests
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SshdServer:
    host: str
    port: int
    user: str
    client_key: Path  # unencrypted ed25519 private key, mode 0600
    home: Path  # sftp start directory (also the user's passwd home), owned by `user`
    known_hosts: Path  # ssh-keyscan output for this server's host key
    pid: int

    def repo(self, name: str) -> str:
        """restic repository string for an absolute path under the home dir."""
        return f"sftp:{self.user}@{self.host}:{self.home / name}"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    pid: int

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def repo(self, bucket: str, prefix: str = "") -> str:
        return f"s3:{self.endpoint}/{bucket}" + (f"/{prefix}" if prefix else "")


@dataclass(frozen=True)
class RestServer:
    url: str  # http(s)://127.0.0.1:PORT (no trailing slash, no credentials)
    user: Optional[str]
    password: Optional[str]
    ca_cert: Optional[Path]  # CA that signed `cert` (rest_tls_ca); None otherwise
    pid: int
    data_dir: Path
    cert: Optional[Path] = None  # server certificate (any TLS server); trust a self-signed one with --cacert cert

    def repo(self, name: str, with_credentials: bool = True) -> str:
        """restic repository string; restic 0.14 takes REST credentials only as URL userinfo."""
        u = urllib.parse.urlsplit(self.url)
        netloc = u.netloc
        if with_credentials and self.user is not None:
            creds = urllib.parse.quote(self.user, safe="") + ":" + urllib.parse.quote(self.password or "", safe="")
            netloc = f"{creds}@{netloc}"
        return f"rest:{u.scheme}://{netloc}/{name}"

    def restic_args(self) -> list[str]:
        """Extra restic flags needed to trust this server (--cacert)."""
        trust = self.ca_cert or self.cert
        return ["--cacert", str(trust)] if trust else []


@dataclass(frozen=True)
class TlsCerts:
    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path  # signed by ca_cert, SAN IP:127.0.0.1 + DNS:localhost
    server_key: Path
    self_cert: Path  # self-signed, SAN IP:127.0.0.1 + DNS:localhost
    self_key: Path


@dataclass
class BearerGate:
    url: str  # http://127.0.0.1:PORT
    token: str  # requests need exactly "Authorization: Bearer <token>"
    upstream: RestServer  # plain rclone REST server behind the gate
    # (method, raw request path incl. query, carried the right token) for every request, in arrival order
    requests_seen: list[tuple[str, str, bool]] = field(default_factory=list)

    def repo(self, name: str) -> str:
        return f"rest:{self.url}/{name}"


@dataclass(frozen=True)
class AzureServer:
    account_name: str
    account_key: str
    pid: int
    endpoint: str = f"http://{LOOPBACK}:{AZURITE_PORT}/{AZURITE_ACCOUNT}"
    data_dir: Optional[Path] = None

    def env(self) -> dict[str, str]:
        return {"AZURE_ACCOUNT_NAME": self.account_name, "AZURE_ACCOUNT_KEY": self.account_key}

    def repo(self, container: str, path: str = "") -> str:
        return f"azure:{container}:/{path}"


# ----------------------------------------------------------------------------------------------------------
# process helpers
# ----------------------------------------------------------------------------------------------------------
def _unavailable(reason: str) -> None:
    """Skip (default) or fail (JABALI_TEST_REQUIRE_SERVERS=1) when a server cannot run here."""
    if os.environ.get("JABALI_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (JABALI_TEST_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(reason)


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        _unavailable(f"{name} not found on PATH: {INSTALL_HINT}")
    return path  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(log: Path, n: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "<no log>"


def _spawn(cmd: list[str], log: Path, env: Optional[dict[str, str]] = None) -> subprocess.Popen:
    # setpriv --pdeathsig: the server gets SIGTERM if pytest itself dies (e.g. SIGKILL), so no orphans survive.
    # It exec()s the command, so Popen.pid is the server's pid.
    prefix = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
    with open(log, "ab") as out:
        return subprocess.Popen(
            prefix + cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate one process by its pid, escalating to SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class _EarlyExit(RuntimeError):
    pass


def _wait_listening(proc: subprocess.Popen, port: int, log: Path, what: str,
                    timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _EarlyExit(f"{what} exited with {proc.returncode} before listening on port {port}; "
                             f"log {log}:\n{_log_tail(log)}")
        if port_open(port):
            return
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout:.0f}s; log {log}:\n"
                       f"{_log_tail(log)}")


def _start_on_free_port(what: str, make_cmd: Callable[[int], list[str]], log: Path,
                        env: Optional[dict[str, str]] = None) -> tuple[subprocess.Popen, int]:
    # free_port() closes its socket before the server binds: retry if someone grabbed the port meanwhile.
    for attempt in range(3):
        port = free_port()
        proc = _spawn(make_cmd(port), log, env)
        try:
            _wait_listening(proc, port, log, what)
            return proc, port
        except _EarlyExit as exc:
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise RuntimeError(str(exc)) from None
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------------------
# sshd
# ----------------------------------------------------------------------------------------------------------
def sftp_command(server: SshdServer) -> str:
    """ssh command line for restic's ``-o sftp.command=...`` (restic then ignores the URL's user/host/port)."""
    return shlex.join([
        "ssh", "-F", "/dev/null",  # ignore ~/.ssh/config of whoever runs the tests
        "-i", str(server.client_key), "-p", str(server.port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
        "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={server.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        f"{server.user}@{server.host}", "-s", "sftp",
    ])


def _ensure_sftp_user(home: Path) -> pwd.struct_passwd:
    try:
        pwd.getpwnam(SFTP_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", SFTP_USER],
                       check=True, capture_output=True)
    # '*' = no password but not locked: useradd's default '!' is refused by sshd when UsePAM=no.
    subprocess.run(["usermod", "-p", "*", SFTP_USER], check=True, capture_output=True)
    # The passwd home is cosmetic (internal-sftp -d sets the start dir). usermod -d exits 8 while another
    # session's sshd serves this user (a concurrent pytest run): that is fine, keep the old home then.
    moved = subprocess.run(["usermod", "-d", str(home), SFTP_USER], capture_output=True)
    if moved.returncode not in (0, 8):
        raise subprocess.CalledProcessError(moved.returncode, moved.args, moved.stdout, moved.stderr)
    return pwd.getpwnam(SFTP_USER)


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SshdServer]:
    sshd = "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK):
        _unavailable(f"{sshd} not found: {INSTALL_HINT}")
    for tool in ("ssh", "ssh-keygen", "ssh-keyscan", "useradd", "usermod"):
        _require_binary(tool)
    if os.geteuid() != 0:
        _unavailable("sshd_server needs root (creates the user jabali-sftp-test and runs sshd)")

    # Not tmp_path_factory: its dirs are 0700 root, and the unprivileged sftp user must reach its home.
    base = Path(tempfile.mkdtemp(prefix="jabali-sshd-"))
    proc: Optional[subprocess.Popen] = None
    try:
        base.chmod(0o755)
        host_key, client_key = base / "ssh_host_ed25519_key", base / "client_key"
        for key in (host_key, client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jabali-test", "-f", str(key)],
                           check=True, capture_output=True)
        client_key.chmod(0o600)

        home = base / "home"
        home.mkdir(mode=0o755)
        pw = _ensure_sftp_user(home)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        home.chmod(0o755)
        # authorized_keys lives outside the home: the system sshd (if any) never sees this key for the user.
        auth_dir = base / "auth"
        auth_dir.mkdir(mode=0o755)
        (auth_dir / "authorized_keys").write_text((base / "client_key.pub").read_text())
        (auth_dir / "authorized_keys").chmod(0o644)

        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege-separation dir
        log = base / "sshd.log"
        config = base / "sshd_config"

        def make_cmd(port: int) -> list[str]:
            config.write_text("\n".join([
                f"ListenAddress {LOOPBACK}",
                f"Port {port}",
                f"HostKey {host_key}",
                "PidFile none",
                f"AuthorizedKeysFile {auth_dir}/authorized_keys",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PermitRootLogin no",
                f"AllowUsers {SFTP_USER}",
                # The shared test user's passwd home may be re-pointed by a concurrent session (xdist):
                # don't let StrictModes/home lookups depend on it; -d fixes the sftp start dir instead.
                "StrictModes no",
                f"Subsystem sftp internal-sftp -d {home}",
                "LogLevel VERBOSE",
                "",
            ]))
            return [sshd, "-D", "-e", "-f", str(config)]  # -D: stays in foreground -> our pid is sshd's

        proc, port = _start_on_free_port("sshd", make_cmd, log)

        known_hosts = base / "known_hosts"
        host_pub = (base / "ssh_host_ed25519_key.pub").read_text().split()[1]
        scanned = ""
        for _ in range(20):  # the port is open, but keyscan may still race the first accept
            r = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(port), LOOPBACK],
                               capture_output=True, text=True)
            scanned = r.stdout
            if host_pub in scanned:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"ssh-keyscan did not return the host key: {scanned!r}; log:\n{_log_tail(log)}")
        known_hosts.write_text(scanned)

        yield SshdServer(host=LOOPBACK, port=port, user=SFTP_USER, client_key=client_key, home=home,
                         known_hosts=known_hosts, pid=proc.pid)
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# moto (S3)
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    for mod in ("moto", "flask", "flask_cors"):
        if importlib.util.find_spec(mod) is None:
            _unavailable(f"python module {mod!r} missing in {sys.executable} (moto[server]): {INSTALL_HINT}")
    d = tmp_path_factory.mktemp("moto")
    log = d / "moto.log"
    proc, port = _start_on_free_port(
        "moto server", lambda p: [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(p)], log)
    try:
        yield S3Server(endpoint=f"http://{LOOPBACK}:{port}", access_key="testing", secret_key="testing",
                       region="us-east-1", pid=proc.pid)
    finally:
        stop_process(proc)


# ----------------------------------------------------------------------------------------------------------
# TLS material
# ----------------------------------------------------------------------------------------------------------
def _make_tls(d: Path) -> TlsCerts:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")])

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, stem: str) -> tuple[Path, Path]:
        kp, cp = d / f"{stem}.key", d / f"{stem}.crt"
        kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        kp.chmod(0o600)
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cp, kp

    def builder(subject: x509.Name, issuer: x509.Name, pub) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=30)))

    def server_exts(b: x509.CertificateBuilder, ca: bool) -> x509.CertificateBuilder:
        return (b.add_extension(san, critical=False)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))

    # EC P-256: instant to generate (RSA would cost ~0.1 s per key) and fine for Go and OpenSSL.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder(name("jabali-test-ca"), name("jabali-test-ca"), ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = server_exts(builder(name(LOOPBACK), ca.subject, srv_key.public_key()), ca=False).sign(ca_key, hashes.SHA256())
    self_key = ec.generate_private_key(ec.SECP256R1())
    # CA:TRUE like `openssl req -x509`: lets it act as its own trust anchor for OpenSSL clients too.
    selfc = server_exts(builder(name(LOOPBACK), name(LOOPBACK), self_key.public_key()), ca=True).sign(
        self_key, hashes.SHA256())

    ca_cert, ca_keyp = write(ca_key, ca, "ca")
    server_cert, server_key = write(srv_key, srv, "server")
    self_cert, self_keyp = write(self_key, selfc, "self")
    return TlsCerts(dir=d, ca_cert=ca_cert, ca_key=ca_keyp, server_cert=server_cert, server_key=server_key,
                    self_cert=self_cert, self_key=self_keyp)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TlsCerts:
    if importlib.util.find_spec("cryptography") is None:
        _unavailable("python package 'cryptography' missing (needed to make test certificates)")
    return _make_tls(tmp_path_factory.mktemp("tls"))


# ----------------------------------------------------------------------------------------------------------
# rclone serve restic (REST)
# ----------------------------------------------------------------------------------------------------------
class RestFactory:
    """Starts `rclone serve restic` servers; all are stopped at session end (or earlier with stop())."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory,
                 tls_certs: Callable[[], TlsCerts]) -> None:
        self._tmp = tmp_path_factory
        self._tls = tls_certs
        self._procs: dict[int, subprocess.Popen] = {}
        self._rclone_config: Optional[Path] = None

    def __call__(self, *, auth: bool = False, tls: Literal[None, "ca", "self"] = None,
                 data_dir: Optional[Path] = None) -> RestServer:
        rclone = _require_binary("rclone")
        d = self._tmp.mktemp("rest")
        data_dir = data_dir or (d / "data")
        data_dir.mkdir(parents=True, exist_ok=True)
        if self._rclone_config is None:
            self._rclone_config = self._tmp.mktemp("rclone") / "rclone.conf"
            self._rclone_config.touch()  # empty config silences rclone's "config file not found" notice

        extra: list[str] = []
        user = password = None
        if auth:
            user, password = "restuser", "p@ss:" + secrets.token_hex(6)  # special chars: exercises URL quoting
            extra += ["--user", user, "--pass", password]
        ca_cert = cert = None
        if tls:
            certs = self._tls()
            cert, key = (certs.server_cert, certs.server_key) if tls == "ca" else (certs.self_cert, certs.self_key)
            ca_cert = certs.ca_cert if tls == "ca" else None
            extra += ["--cert", str(cert), "--key", str(key)]

        proc, port = _start_on_free_port(
            "rclone serve restic",
            lambda p: [rclone, "serve", "restic", str(data_dir), "--addr", f"{LOOPBACK}:{p}", *extra],
            d / "rclone.log", env={"RCLONE_CONFIG": str(self._rclone_config)})
        self._procs[proc.pid] = proc
        scheme = "https" if tls else "http"
        return RestServer(url=f"{scheme}://{LOOPBACK}:{port}", user=user, password=password, ca_cert=ca_cert,
                          pid=proc.pid, data_dir=data_dir, cert=cert)

    def stop(self, server: RestServer) -> None:
        proc = self._procs.pop(server.pid, None)
        if proc is not None:
            stop_process(proc)

    def stop_all(self) -> None:
        for pid in list(self._procs):
            stop_process(self._procs.pop(pid))


@pytest.fixture(scope="session")
def rest_factory(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RestFactory]:
    # tls_certs is resolved lazily so plain servers don't depend on `cryptography`.
    factory = RestFactory(tmp_path_factory, lambda: request.getfixturevalue("tls_certs"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def rest_plain(rest_factory: RestFactory) -> RestServer:
    return rest_factory()


@pytest.fixture(scope="session")
def rest_basic_auth(rest_factory: RestFactory) -> RestServer:
    return rest_factory(auth=True)


@pytest.fixture(scope="session")
def rest_tls_ca(rest_factory: RestFactory) -> RestServer:
    return rest_factory(tls="ca")


@pytest.fixture(scope="session")
def rest_tls_self_signed(rest_factory: RestFactory) -> RestServer:
    return rest_factory(tls="self")


# ----------------------------------------------------------------------------------------------------------
# Bearer-token gate: in-process threaded reverse proxy
# ----------------------------------------------------------------------------------------------------------
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
               "trailer", "trailers", "transfer-encoding", "upgrade"}


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive client threads must not block shutdown
    upstream_host: str
    upstream_port: int
    require_token: Optional[str]  # gate mode: reject unless "Authorization: Bearer <token>"
    inject_token: Optional[str]  # injector mode (for tests): add the header before forwarding
    seen: list[tuple[str, str, bool]]


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 60  # idle keep-alive connections end eventually
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives (Content-Length or de-chunked Transfer-Encoding)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from self._read_exact(size)
                self.rfile.readline()  # CRLF after chunk data
        else:
            yield from self._read_exact(int(self.headers.get("Content-Length") or 0))

    def _read_exact(self, n: int) -> Iterator[bytes]:
        while n > 0:
            data = self.rfile.read(min(n, 65536))
            if not data:
                raise ConnectionError("client closed mid-body")
            n -= len(data)
            yield data

    def _reply(self, status: int, text: str, extra: Optional[dict[str, str]] = None) -> None:
        body = text.encode()
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        srv = self.server
        try:
            if srv.require_token is not None:
                ok = self.headers.get("Authorization") == f"Bearer {srv.require_token}"
                srv.seen.append((self.command, self.path, ok))
                if not ok:
                    for _ in self._body_chunks():  # drain so the keep-alive connection stays in sync
                        pass
                    self._reply(401, "401 Unauthorized: bearer token required\n",
                                {"WWW-Authenticate": 'Bearer realm="jabali-test"'})
                    return
            self._forward()
        except (ConnectionError, TimeoutError, ValueError):
            self.close_connection = True  # client went away or sent garbage: drop the connection

    def _forward(self) -> None:
        srv = self.server
        conn_tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        drop = _HOP_BY_HOP | conn_tokens | {"authorization", "host", "content-length", "expect"}
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        # One upstream connection per request: simple, and loopback connects are cheap.
        up = http.client.HTTPConnection(srv.upstream_host, srv.upstream_port, timeout=120)
        try:
            try:
                up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                up.putheader("Host", f"{srv.upstream_host}:{srv.upstream_port}")
                for k, v in self.headers.items():
                    if k.lower() not in drop:
                        up.putheader(k, v)
                if srv.inject_token is not None:
                    up.putheader("Authorization", f"Bearer {srv.inject_token}")
                if chunked:
                    up.putheader("Transfer-Encoding", "chunked")
                elif self.headers.get("Content-Length") is not None:
                    up.putheader("Content-Length", self.headers["Content-Length"])
                up.endheaders()
                for data in self._body_chunks():
                    up.send(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
                if chunked:
                    up.send(b"0\r\n\r\n")
                resp = up.getresponse()
            except OSError as exc:  # upstream down/refused: not the client's fault
                self.close_connection = True
                self._reply(502, f"502 Bad Gateway: {exc}\n")
                return

            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            length = resp.getheader("Content-Length")
            no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
            if length is not None:
                self.send_header("Content-Length", length)  # also for HEAD: restic's Stat reads it
            elif not no_body:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if no_body:
                resp.read()
            elif length is not None:
                while data := resp.read(65536):
                    self.wfile.write(data)
            else:
                while data := resp.read1(65536):
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            up.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle


class HttpProxy:
    """Threaded HTTP/1.1 reverse proxy on 127.0.0.1 (gate: require_token; injector: inject_token)."""

    def __init__(self, upstream_url: str, *, require_token: Optional[str] = None,
                 inject_token: Optional[str] = None) -> None:
        u = urllib.parse.urlsplit(upstream_url)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream_url!r}")
        self.httpd = _ProxyServer((LOOPBACK, 0), _ProxyHandler)
        self.httpd.upstream_host, self.httpd.upstream_port = u.hostname, u.port
        self.httpd.require_token, self.httpd.inject_token = require_token, inject_token
        self.httpd.seen = []
        self.url = f"http://{LOOPBACK}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"proxy{self.url}", daemon=True)
        self._thread.start()

    @property
    def seen(self) -> list[tuple[str, str, bool]]:
        return self.httpd.seen

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def bearer_gate_server(rest_factory: RestFactory) -> Iterator[BearerGate]:
    upstream = rest_factory()  # its own plain REST server, so request counts aren't mixed with rest_plain
    token = secrets.token_urlsafe(24)
    proxy = HttpProxy(upstream.url, require_token=token)
    try:
        yield BearerGate(url=proxy.url, token=token, upstream=upstream, requests_seen=proxy.seen)
    finally:
        proxy.stop()


@pytest.fixture
def bearer_gate(bearer_gate_server: BearerGate) -> BearerGate:
    bearer_gate_server.requests_seen.clear()
    return bearer_gate_server


# ----------------------------------------------------------------------------------------------------------
# azurite (Azure Blob)
# ----------------------------------------------------------------------------------------------------------
def test_tools_dir() -> Path:
    return Path(os.environ.get("JABALI_TEST_TOOLS") or REPO_ROOT / ".test-tools")


def _azurite_supports_disable_telemetry(node_modules: Path, binary: Path) -> bool:
    src = node_modules / "azurite" / "dist" / "src" / "blob" / "BlobEnvironment.js"
    try:
        return "disableTelemetry" in src.read_text(errors="replace")
    except OSError:  # unknown layout: ask the binary (~0.5 s)
        r = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
        return "disableTelemetry" in r.stdout + r.stderr


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    node_modules = test_tools_dir() / "node" / "node_modules"
    binary = node_modules / ".bin" / "azurite-blob"
    if not binary.exists():
        _unavailable(f"{binary} not found: {INSTALL_HINT} (or set JABALI_TEST_TOOLS)")
    _require_binary("node")
    if port_open(AZURITE_PORT):
        _unavailable(f"{LOOPBACK}:{AZURITE_PORT} is busy (restic 0.14's emulator mode hardcodes this port); "
                     "is another azurite running?")
    d = tmp_path_factory.mktemp("azurite")
    data = d / "data"
    data.mkdir()
    cmd = [str(binary), "--blobHost", LOOPBACK, "--blobPort", str(AZURITE_PORT), "--location", str(data), "--silent"]
    if _azurite_supports_disable_telemetry(node_modules, binary):
        cmd.append("--disableTelemetry")
    log = d / "azurite.log"
    proc = _spawn(cmd, log)
    try:
        try:
            _wait_listening(proc, AZURITE_PORT, log, "azurite-blob")
        except _EarlyExit as exc:
            if "EADDRINUSE" in str(exc):
                _unavailable(f"{LOOPBACK}:{AZURITE_PORT} became busy while starting azurite: {exc}")
            raise RuntimeError(str(exc)) from None
        yield AzureServer(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY, pid=proc.pid, data_dir=data)
    finally:
        stop_process(proc)
