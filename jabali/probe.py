"""Testing a destination: connect, `restic init` when no repository exists, prove write and delete.

Given a Repository and a lock path, `probe` returns a ProbeResult whose message names the failing step in
words an operator can act on. Init is serialised per repository with a file lock, so two concurrent tests
of one repository can never both run `restic init`.

The write-and-delete proof is a locking read (`restic list keys`): restic writes a lock file into the
repository and removes it on exit, which is exactly what backups and retention need, for the cost of one
restic process (~0.7 s). A `key add`/`key remove` pair proved the same for ~5 s (restic re-tunes its key
derivation on every key add).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import restic
from .restic import Failure, ResticError

@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str
    initialized: bool = False
    step: str | None = None


def timeout() -> float:
    return float(os.environ.get("JABALI_TEST_TIMEOUT", "120"))


def probe(repo: restic.Repository, lock_path: Path) -> ProbeResult:
    """Connect to the repository (initialising it if absent) and prove we can write and delete there."""
    step = "connect"
    initialized = False
    try:
        with FileLock(str(lock_path), timeout=timeout()):
            try:
                _locking_read(repo)
                return ProbeResult(True, "ok")
            except ResticError as exc:
                if exc.failure is not Failure.NO_REPO:
                    raise
            step = "init"
            try:
                restic.run(repo, ["init"], timeout=timeout())
                initialized = True
            except ResticError as init_exc:
                if init_exc.failure is not Failure.EXISTS:
                    raise
            step = "write"
            _locking_read(repo)
    except Timeout:
        return ProbeResult(False, "another test of this repository is still running", step=step)
    except ResticError as exc:
        if step == "connect" and exc.failure is Failure.PERMISSION:
            step = "write"
        return ProbeResult(False, f"{step} failed: {exc}", initialized, step)
    return ProbeResult(True, "ok, repository initialised" if initialized else "ok", initialized)


def _locking_read(repo: restic.Repository) -> None:
    """Open the repository and take (write) and release (delete) a lock; fail if either did not happen."""
    result = restic.run(repo, ["list", "keys"], timeout=timeout())
    if "unable to remove lock" in result.stderr or "error while unlocking" in result.stderr.lower():
        raise ResticError(Failure.PERMISSION, "restic could not delete its lock file (delete permission missing)")
