"""Secrets at rest: every secret is a row of `admin_secrets`, encrypted with the master key.

Given a Store and the key file path, `Vault` puts and gets plaintext secrets by (scope, name), creating the
master key on first use, and `rotate` re-encrypts everything under a new key atomically.
"""

from __future__ import annotations

from pathlib import Path

from . import crypto
from .errors import OperationFailed
from .store import SecretRow, Store


def _aad(scope: str, name: str) -> bytes:
    # Binds each ciphertext to its row: a secret copied into another row does not decrypt.
    return f"jabali:{scope}:{name}".encode()


class Vault:
    def __init__(self, store: Store, key_path: Path) -> None:
        self.store = store
        self.key_path = key_path
        self._key: crypto.MasterKey | None = None

    @property
    def key(self) -> crypto.MasterKey:
        if self._key is None:
            self._key = self._load_or_create()
        return self._key

    def _load_or_create(self) -> crypto.MasterKey:
        stored_ids = self.store.secret_key_ids()
        pending = crypto.pending_path(self.key_path)
        if pending.exists():
            # An interrupted rotation: if the database already uses the new key, finish the rename.
            new = crypto.read_key(pending)
            if stored_ids and stored_ids <= {new.key_id}:
                pending.replace(self.key_path)
                crypto.fsync_dir(self.key_path.parent)
                return new
            pending.unlink()
        if self.key_path.exists():
            key = crypto.read_key(self.key_path)
            if stored_ids and not stored_ids <= {key.key_id}:
                raise OperationFailed(
                    f"master key {self.key_path} is not the key the stored secrets were encrypted with"
                )
            return key
        if stored_ids:
            raise OperationFailed(
                f"master key {self.key_path} is missing but the database holds encrypted secrets;"
                " restore the key file (or set JABALI_KEY_FILE)"
            )
        key = crypto.generate()
        crypto.write_key(self.key_path, key)
        return key

    def put(self, scope: str, name: str, value: str) -> None:
        nonce, ciphertext = self.key.encrypt(value.encode(), _aad(scope, name))
        self.store.put_secret(SecretRow(scope, name, self.key.key_id, nonce, ciphertext))

    def get(self, scope: str, name: str) -> str | None:
        row = self.store.secret(scope, name)
        if row is None:
            return None
        return self.key.decrypt(row.nonce, row.ciphertext, _aad(scope, name)).decode()

    def rotate(self) -> int:
        """Re-encrypt every secret under a fresh key; return how many were re-encrypted."""
        old = self.key
        new = crypto.generate()
        pending = crypto.pending_path(self.key_path)
        if pending.exists():
            pending.unlink()
        crypto.write_key(pending, new)
        try:
            with self.store.tx():
                rows = self.store.secrets()
                for row in rows:
                    plain = old.decrypt(row.nonce, row.ciphertext, _aad(row.scope, row.name))
                    nonce, ciphertext = new.encrypt(plain, _aad(row.scope, row.name))
                    self.store.put_secret(SecretRow(row.scope, row.name, new.key_id, nonce, ciphertext))
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        # The commit above is the point of no return; the rename completes it (and load finishes it if we die).
        pending.replace(self.key_path)
        crypto.fsync_dir(self.key_path.parent)
        self._key = new
        return len(rows)
