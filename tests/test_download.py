"""Backup Download: `download create USER` (operator) and `tenant download` (the tenant through sudo) take a
fresh backup and hand it over as one .tar.gz owned by the account (0600) in <download dir>/<user>/; run-due
deletes archives past `[download] expire_hours`."""

from __future__ import annotations

import os
import stat
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

from small_account import HOME_FILES, Panel, SmallAccount

T0 = datetime.fromisoformat("2031-05-01T10:00:00+00:00")  # far from the default nightly 02:00 run


def at(hours: float) -> dict[str, str]:
    return {"JABALI_NOW": (T0 + timedelta(hours=hours)).isoformat()}


def member(path: Path) -> str:
    """The name of a file in the archive: its absolute path without the leading '/'."""
    return str(path).lstrip("/")


def check_archive(panel: Panel, acc: SmallAccount, row: dict) -> None:
    path = Path(row["path"])
    assert path.parent == panel.downloads / acc.user and path.name.endswith(".tar.gz")
    assert path.name == f"{acc.user}-backup-{row['backup_id']}.tar.gz"
    st = path.lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (acc.uid, acc.gid)
    assert row["size"] == st.st_size > 0
    folder = path.parent.lstat()
    assert folder.st_uid == acc.uid and stat.S_IMODE(folder.st_mode) == 0o700
    assert stat.S_IMODE(panel.downloads.lstat().st_mode) == 0o711 and panel.downloads.lstat().st_uid == 0

    with tarfile.open(path, "r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
        for rel, data in HOME_FILES.items():
            name = member(acc.home / rel)
            assert name in members, (name, sorted(members)[:20])
            assert archive.extractfile(members[name]).read() == data
            assert members[name].uid == acc.uid
        for extra in (acc.crontab, acc.zone):
            if extra is not None:
                assert archive.extractfile(members[member(extra)]).read() == extra.read_bytes()
        assert not any(n.startswith(("/", "../")) or "/../" in n for n in members)
        unpacked = panel.tmp_path / f"unpacked-{row['id']}"
        archive.extractall(unpacked, filter="data")
    home = unpacked / member(acc.home)
    assert {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()} == HOME_FILES


def test_operator_and_tenant_downloads_then_expiry(panel: Panel, run_cli) -> None:
    panel.write_config(expire_hours="1", min_interval_minutes="20")
    acc = panel.account(cron=True, zone=True)
    other = panel.account()
    assert panel.json("snapshot", "list", "--account", acc.user) == []

    made = run_cli("download", "create", acc.user, env=at(0))
    assert made.exit_code == 0, made.output
    first = panel.json("download", "list", "--account", acc.user)[0]
    assert made.output.strip().startswith(first["path"]), "the archive path is printed"
    assert first["expires_at"] == (T0 + timedelta(hours=1)).isoformat()
    check_archive(panel, acc, first)

    # A tenant may start one download (a full backup + an archive) per interval.
    throttled = run_cli("tenant", "download", env={"SUDO_USER": acc.user, **at(0.1)})
    assert throttled.exit_code == 2 and "minutes after it" in throttled.output, throttled.output

    second = panel.json("tenant", "download", env={"SUDO_USER": acc.user, **at(0.5)})
    assert second["account"] == acc.user and second["backup_id"] != first["backup_id"]
    check_archive(panel, acc, second)
    assert not Path(first["path"]).exists(), "one live archive per account: the new one supersedes the old"

    backups = {c["backup_id"] for c in panel.json("snapshot", "list", "--account", acc.user)}
    assert backups == {first["backup_id"], second["backup_id"]}, "each download takes a fresh backup"
    assert panel.json("snapshot", "list", "--account", other.user) == []
    listed = panel.json("download", "list")
    assert [(r["account"], r["path"]) for r in listed] == [(acc.user, second["path"])]
    assert panel.json("download", "list", "--account", other.user) == []

    # Under an hour after it was made: not expired yet.
    report = panel.json("run-due", env=at(1.2))
    assert not [i for i in report["items"] if i["kind"] == "download"]
    # Later: past its hour.
    report = panel.json("run-due", env=at(2))
    expired = sorted(i["target"] for i in report["items"] if i["kind"] == "download")
    assert expired == [second["path"]], report
    assert not Path(second["path"]).exists()
    assert panel.json("download", "list") == []
    assert not [i for i in panel.json("run-due", env=at(3))["items"] if i["kind"] == "download"]


def test_download_of_unknown_account_is_refused(panel: Panel, run_cli) -> None:
    result = run_cli("download", "create", "nosuchuser")
    assert result.exit_code == 2 and "not found" in result.output
    assert panel.json("download", "list") == []
    assert not panel.downloads.exists()


def test_tenant_cannot_redirect_the_archive_while_it_is_written(panel: Panel, monkeypatch, run_cli) -> None:
    """The archive is written in the tenant's own directory, for as long as the backup takes to stream. The
    tenant may rename it and put a symlink to a root-owned file in its place meanwhile: jabali must hand the
    archive over through its open file, never by path (chown would follow the symlink)."""
    from jabali import downloads

    acc = panel.account()
    victim = panel.base / "shadow-like"
    victim.write_bytes(b"root:secret\n")
    victim.chmod(0o600)
    real_add_files = downloads._add_files

    def add_files_then_swap(src, out) -> None:
        real_add_files(src, out)
        folder = panel.downloads / acc.user
        (archive,) = [p for p in folder.iterdir() if p.name.endswith(".tar.gz")]
        os.rename(archive, folder / "mine.tar.gz")
        os.symlink(victim, archive)
        os.lchown(archive, acc.uid, acc.gid)

    monkeypatch.setattr(downloads, "_add_files", add_files_then_swap)
    run_cli("tenant", "download", env={"SUDO_USER": acc.user})
    st = victim.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600), "root's file was given away"
    assert victim.read_bytes() == b"root:secret\n"
    kept = (panel.downloads / acc.user / "mine.tar.gz").lstat()
    assert kept.st_uid == acc.uid
