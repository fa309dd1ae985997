"""Key material for tests, generated with `cryptography` (no network, no fixtures files in the repo)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def ssh_key(path: Path, passphrase: bytes | None = None) -> Path:
    """An ed25519 key in OpenSSH format; with a passphrase, an encrypted PKCS#8 PEM key (OpenSSH's own
    encrypted format needs bcrypt, which is not a dependency)."""
    key = ed25519.Ed25519PrivateKey.generate()
    if passphrase:
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
        )
    else:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def service_account(path: Path, project_id: str = "jabali-test", **overrides: object) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    doc = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": f"backup@{project_id}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    doc.update(overrides)
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path
