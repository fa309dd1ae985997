"""Runs INSIDE a fresh network + mount (+ pid) namespace, started by tests/srv_gcs.py as

    unshare --net --mount [--pid --fork --kill-child --mount-proc] python gcs_netns_runner.py SPEC.json

1. brings up loopback and bind-mounts a private hosts file over /etc/hosts (mount namespace: invisible outside);
2. starts fake-gcs-server on 127.0.0.1:443 (storage.googleapis.com) with a filesystem backend, and a tiny
   OAuth2 token endpoint on 127.0.0.2:443 (oauth2.googleapis.com) answering POST /token with a bearer token after
   checking the service-account JWT signature; both use a certificate signed by the test CA;
3. runs the given commands in order, capturing their output;
4. stops both servers and writes the results as JSON to spec["results"].

Standard library + cryptography only; no jabali imports.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_RESPONSE = {"access_token": "test-token", "token_type": "Bearer", "expires_in": 3600}


def _b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _make_verifier(sa_json_path: str | None):
    """Returns verify(assertion) -> (ok, claims_or_error)."""
    if not sa_json_path:
        return lambda a: (True, {})
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    with open(sa_json_path) as f:
        sa = json.load(f)
    pub = serialization.load_pem_private_key(sa["private_key"].encode(), password=None).public_key()

    def verify(assertion: str):
        try:
            h, p, s = assertion.split(".")
            header = json.loads(_b64url(h))
            claims = json.loads(_b64url(p))
            if header.get("alg") != "RS256":
                return False, f"unexpected alg {header.get('alg')}"
            pub.verify(_b64url(s), f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception as e:  # noqa: BLE001
            return False, f"bad JWT: {e!r}"
        if claims.get("iss") != sa.get("client_email"):
            return False, f"iss {claims.get('iss')!r} != client_email"
        return True, claims

    return verify


class _TokenHandler(BaseHTTPRequestHandler):
    server_version = "jabali-test-token/1"
    verify = staticmethod(lambda a: (True, {}))
    log: list = []

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        entry = {"path": self.path, "grant_type": form.get("grant_type")}
        if "assertion" in form:
            ok, info = self.verify(form["assertion"])
            entry["jwt_valid"] = ok
            if ok:
                entry["iss"] = info.get("iss")
                entry["scope"] = info.get("scope")
                entry["aud"] = info.get("aud")
            else:
                entry["error"] = info
            self.log.append(entry)
            if not ok:
                return self._reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        else:
            self.log.append(entry)
        self._reply(200, TOKEN_RESPONSE)

    def do_GET(self):  # noqa: N802
        self._reply(404, {"error": "not_found"})

    def log_message(self, fmt, *args):  # keep stderr clean
        pass


def _wait_tcp(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _run_commands(spec: dict) -> list[dict]:
    env = spec["env"]
    out = []
    for argv in spec["commands"]:
        t0 = time.monotonic()
        try:
            r = subprocess.run(
                argv,
                env=env,
                cwd=spec.get("cwd") or None,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=spec.get("timeout") or None,
            )
            rc, so, se = r.returncode, r.stdout, r.stderr
        except FileNotFoundError as e:
            rc, so, se = 127, b"", f"{e}\n".encode()
        except subprocess.TimeoutExpired as e:
            rc, so, se = -9, e.stdout or b"", (e.stderr or b"") + f"\ntimeout after {e.timeout}s\n".encode()
        out.append(
            {
                "args": argv,
                "returncode": rc,
                "stdout": so.decode("utf-8", "replace"),
                "stderr": se.decode("utf-8", "replace"),
                "duration": round(time.monotonic() - t0, 3),
            }
        )
        if rc != 0 and spec.get("stop_on_error"):
            break
    return out


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    result: dict = {"results": [], "token_requests": [], "error": None}
    gcs = None
    token_srv = None
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        r = subprocess.run(["mount", "--bind", spec["hosts"], "/etc/hosts"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mount --bind hosts failed: {r.stderr.strip()}")

        gcs_log = open(spec["gcs_log"], "ab")
        gcs = subprocess.Popen(
            [
                spec["fake_gcs"],
                "-scheme", "https", "-host", "127.0.0.1", "-port", "443",
                "-cert-location", spec["cert"], "-private-key-location", spec["key"],
                "-backend", "filesystem", "-filesystem-root", spec["data_dir"],
                "-public-host", "storage.googleapis.com",
                "-external-url", "https://storage.googleapis.com",
                "-log-level", spec.get("gcs_log_level", "warn"),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=gcs_log,
            stderr=subprocess.STDOUT,
        )
        gcs_log.close()

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(spec["cert"], spec["key"])
        _TokenHandler.verify = staticmethod(_make_verifier(spec.get("credentials_json")))
        _TokenHandler.log = result["token_requests"]
        token_srv = ThreadingHTTPServer(("127.0.0.2", 443), _TokenHandler)
        token_srv.daemon_threads = True
        token_srv.socket = ctx.wrap_socket(token_srv.socket, server_side=True)
        threading.Thread(target=token_srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

        if not _wait_tcp("127.0.0.1", 443, 30):
            raise RuntimeError(
                f"fake-gcs-server did not listen on 127.0.0.1:443 (exit={gcs.poll()}):\n{_tail(spec['gcs_log'])}"
            )
        result["results"] = _run_commands(spec)
    except Exception as e:  # noqa: BLE001
        result["error"] = f"{e}\n{traceback.format_exc()}"
    finally:
        if token_srv is not None:
            token_srv.shutdown()
            token_srv.server_close()
        if gcs is not None and gcs.poll() is None:
            gcs.send_signal(signal.SIGTERM)
            try:
                gcs.wait(10)
            except subprocess.TimeoutExpired:
                gcs.kill()
                gcs.wait(5)
        tmp = spec["results"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, spec["results"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
