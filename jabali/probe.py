"""Testing a destination: connect, `restic init` when no repository exists, prove write and delete.

Given a Repository and a lock path, `probe` returns a ProbeResult whose message names the failing step in
words an operator can act on. Init is serialised per repository with a file lock, so two concurrent tests
of one repository can never both run `restic init`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import restic
from .restic import Failure, ResticError

PROBE_HOST = "jabali-write-probe"


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
                restic.run(repo, ["--no-lock", "cat", "config"], timeout=timeout())
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
            _add_probe_key(repo)
            step = "delete"
            _remove_probe_keys(repo)
    except Timeout:
        return ProbeResult(False, "another test of this repository is still running", step=step)
    except ResticError as exc:
        return ProbeResult(False, f"{step} failed: {exc}", initialized, step)
    return ProbeResult(True, "ok, repository initialised" if initialized else "ok", initialized)


def _add_probe_key(repo: restic.Repository) -> None:
    # A throwaway key file is the smallest real write restic can make, and removing it proves deletion,
    # which retention (forget/prune) needs; it adds no data to the repository.
    restic.run(
        repo,
        ["key", "add", "--host", PROBE_HOST, "--user", "jabali", "--new-password-file", "{newpass}"],
        extra_fds={"{newpass}": secrets.token_urlsafe(32).encode()},
        timeout=timeout(),
    )


def _remove_probe_keys(repo: restic.Repository) -> None:
    keys = restic.run(repo, ["key", "list", "--json"], timeout=timeout()).json()
    for key in keys or []:
        if key.get("hostName") == PROBE_HOST and not key.get("current"):
            restic.run(repo, ["key", "remove", key["id"]], timeout=timeout())
