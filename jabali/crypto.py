"""The master key and authenticated encryption of secrets (AES-256-GCM from `cryptography`).

The key file holds 32 random bytes, base64, mode 0600. Rotation writes the new key beside the old one as
`<key>.new`, re-encrypts every secret in one database transaction, then renames the new key into place;
`load_key` finishes a rotation that was interrupted between those last two steps.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import OperationFailed

KEY_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True)
class MasterKey:
    raw: bytes

    @property
    def key_id(self) -> str:
        """A short fingerprint stored with each ciphertext, so the right key is known to be loaded."""
        return hashlib.sha256(b"jabali-key-id" + self.raw).hexdigest()[:16]

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(self.raw).encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self.raw).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise OperationFailed(
                "a stored secret does not decrypt with the master key (wrong key file, or tampered database)"
            ) from None


def generate() -> MasterKey:
    return MasterKey(os.urandom(KEY_BYTES))


def read_key(path: Path) -> MasterKey:
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"cannot read master key {path}: {exc.__class__.__name__}") from None
    if len(raw) != KEY_BYTES:
        raise OperationFailed(f"master key {path} is not a {KEY_BYTES}-byte key")
    return MasterKey(raw)


def write_key(path: Path, key: MasterKey) -> None:
    """Write `key` to `path` (mode 0600) durably; fails if the file already exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, base64.b64encode(key.raw) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")
