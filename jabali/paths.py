"""Where jabali keeps its state: one directory holding the SQLite catalog, caches and locks."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def state_dir() -> Path:
    """Return the state directory, creating it (mode 0700) if needed.

    `$JABALI_STATE_DIR` wins; otherwise `/var/lib/jabali` for root, else the user's data dir.
    """
    env = os.environ.get("JABALI_STATE_DIR")
    if env:
        path = Path(env)
    elif os.geteuid() == 0:
        path = Path("/var/lib/jabali")
    else:
        path = Path(platformdirs.user_data_dir("jabali"))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return state_dir() / "jabali.db"


def key_file() -> Path:
    """The master key: `$JABALI_KEY_FILE`, else `master.key` beside (never inside) the database."""
    env = os.environ.get("JABALI_KEY_FILE")
    return Path(env) if env else state_dir() / "master.key"


def sub_dir(name: str) -> Path:
    """Return `<state>/<name>`, created with mode 0700 (cache, locks, ssh ...)."""
    path = state_dir() / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
