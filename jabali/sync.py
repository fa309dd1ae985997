"""`snapshot sync`: rebuild the catalog of one destination from its repository alone (tags), so a panel
host rebuilt after a loss sees every backup again with nothing but the destination and its password."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from . import clock, destination_ops, restic
from .app import App
from .engine import KIND
from .store import BackupCopy, DestinationRow, SnapshotRow


def _tags(snapshot: dict[str, Any]) -> dict[str, str]:
    out = {}
    for tag in snapshot.get("tags") or []:
        key, _, value = tag.partition("=")
        out[key] = value
    return out


def _time(value: str) -> str:
    # restic prints nanoseconds and 'Z'; Python 3.10 cannot parse either.
    value = value.replace("Z", "+00:00")
    head, _, rest = value.partition(".")
    tz = ""
    for sign in ("+", "-"):
        if sign in rest:
            tz = sign + rest.split(sign, 1)[1]
    return clock.iso(clock.parse(head + tz))


def sync_destination(app: App, dest: DestinationRow) -> int:
    """Read every jabali snapshot of `dest` and make the catalog match it; return how many backups."""
    repo = destination_ops.repository_for(app, dest)
    listing = restic.run_unlocking(repo, ["snapshots", "--json", "--tag", "jabali"]).json() or []
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for snap in listing:
        tags = _tags(snap)
        if tags.get("backup") and tags.get("account") and tags.get("component"):
            groups[tags["backup"]].append(snap)
    # restic 0.14's `backup --json` summary names the snapshot by its short id, so the catalog may hold
    # a prefix of the id listed here: keep the catalog's id rather than adding the snapshot a second time.
    known = {sid[:8]: sid for sid in app.store.snapshot_ids(dest.id)}

    def catalog_id(full: str) -> str:
        short = known.get(full[:8])
        return short if short and full.startswith(short) else full

    present = set()
    with app.store.tx():
        for backup_id, snaps in groups.items():
            tags = _tags(snaps[0])
            expect = [c for c in tags.get("expect", "files").split("+") if c]
            have = {_tags(s)["component"] for s in snaps}
            status = "ok" if have >= set(expect) else "partial"
            at = min(_time(s["time"]) for s in snaps)
            logical = (["files"] if "files" in have else []) + (["databases"] if have - {"files"} else [])
            app.store.upsert_backup(backup_id, tags["account"], tags.get("kind", KIND), at, status, logical)
            sizes = [((s.get("summary") or {}).get("total_bytes_processed") or 0) for s in snaps]
            files = [((s.get("summary") or {}).get("total_files_processed") or 0) for s in snaps]
            app.store.put_copy(BackupCopy(backup_id, dest.id, dest.name, tags["account"], at, status, None,
                                          int(sum(sizes)), int(sum(files)), logical), keep_existing=True)
            for snap, size, count in zip(snaps, sizes, files):
                present.add(catalog_id(snap["id"]))
                app.store.put_snapshot(SnapshotRow(dest.id, catalog_id(snap["id"]), backup_id, _tags(snap)["component"], at,
                                                   int(size), int(count), snap.get("paths") or []))
    for copy in app.store.copies(destination_id=dest.id):
        ids = {s.snapshot_id for s in app.store.snapshots_of(copy.backup_id, dest.id)}
        if not ids & present:
            app.store.drop_copy(copy.backup_id, dest.id)
    return len(groups)
