"""The application context: one Store and one Vault per process, opened lazily from the state directory."""

from __future__ import annotations

from functools import cached_property

from typing import TYPE_CHECKING

from . import paths
from .store import Store

if TYPE_CHECKING:
    from .vault import Vault


class App:
    @cached_property
    def store(self) -> Store:
        return Store.open(paths.db_path())

    @cached_property
    def vault(self) -> "Vault":
        from .vault import Vault  # cryptography is slow to import; only commands that need secrets pay

        return Vault(self.store, paths.key_file())

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
