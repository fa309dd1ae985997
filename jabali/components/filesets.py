"""The paths of an account that go into its `files` snapshot, grouped by logical component."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import accounts
from ..store import AccountRow


@dataclass
class FileSet:
    paths: list[str] = field(default_factory=list)           # what restic backs up
    components: dict[str, list[str]] = field(default_factory=dict)  # logical component -> its paths
    missing: list[str] = field(default_factory=list)         # optional paths that do not exist


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def file_set(account: AccountRow, manifest: Path, only: set[str] | None = None) -> FileSet:
    """Given an account, return the paths of its files snapshot (the manifest path included); `only`
    limits it to some logical components."""
    c = account.config
    fs = FileSet()
    home = c["home"]
    if only is None or "files" in only:
        fs.components["files"] = [home]
        fs.paths.append(home)
    optional: list[tuple[str, str]] = []
    if c.get("mail_dir"):
        optional.append(("mailboxes", c["mail_dir"]))
    optional += [("dns", z) for z in c.get("zone_files", [])]
    optional.append(("cron", str(accounts.crontab_path(account))))
    for component, path in optional:
        if only is not None and component not in only:
            continue
        if not Path(path).exists():
            if component != "cron":  # most accounts have no crontab: not worth a warning
                fs.missing.append(path)
            continue
        fs.components.setdefault(component, []).append(path)
        if not any(_inside(path, p) for p in fs.paths):
            fs.paths.append(path)
    fs.paths.append(str(manifest))
    return fs
