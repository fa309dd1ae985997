"""Restores never write outside the account's tree, whatever the tenant planted or the snapshot holds.

Threats covered (each test says which):
  1. The tenant plants links in the live home before an in-place restore: a directory symlink
     (public_html -> a root-owned directory), a file symlink (.config/app.ini -> a root-owned file) and a
     hardlink (notes.txt = a root-owned file's inode). A root process writing the restored tree would follow
     them; jabali extracts with `tar` running as the tenant, so they lead only where the tenant could go anyway.
  2. The same with `--path` (only some files): tar then does not extract the parent directory entry, so it
     does walk through a planted directory symlink; the tenant's own permissions are what stops it.
  3. A staging restore of a backup taken after the links were planted: links are restored as links, nothing
     is written through them.
  4. A hostile snapshot: someone with write access to a repository (a compromised storage host) plants a
     snapshot tagged for the account, with symlinks pointing outside (absolute, relative '..', to /etc) and a
     manifest claiming any source directory; `snapshot sync` lists it and a staging restore runs it.
     restic 0.14 stores trees of real file names, so this is what a snapshot can hold: no '..' names, no
     two entries of one name, so no "symlink, then a file below it".
  5. What restic cannot store but a crafted repository could deliver through `restic dump`: a tar stream
     with '..' and absolute member names, a symlink followed by a member below it, hard links to absolute
     and '..' targets, a device node. Fed through jabali's own extraction (restore_run._extract, the
     tenant's tar with --no-same-owner), nothing lands outside the destination.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from account_data import tree_manifest
from small_account import HOME_FILES, Panel, SmallAccount


def root_tree(root: Path, files: dict[str, bytes], mode: int = 0o755) -> Path:
    root.mkdir(mode=mode)
    root.chmod(mode)
    for name, data in files.items():
        (root / name).write_bytes(data)
        (root / name).chmod(0o644)
    return root


def fingerprint(path: Path) -> tuple:
    st = path.lstat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino


def outside_of(panel: Panel, acc: SmallAccount) -> dict:
    """Everything under the panel's base directory except the account's home and the staging directory."""
    home = str(acc.home.relative_to(panel.base))
    return tree_manifest(panel.base, ignore=[home, "staging"])


def run_restore(panel: Panel, run_cli, acc: SmallAccount, backup_id: str, target: str, *extra: str) -> dict:
    created = run_cli("restore", "request", "--account", acc.user, "--snapshot", backup_id, "--components", "files",
                      "--target", target, *extra, "--json")
    assert created.exit_code == 0, created.output
    rid = str(json.loads(created.stdout)["id"])
    panel.cli("restore", "approve", rid)
    run_cli("restore", "run", rid)
    return panel.json("restore", "show", rid)


def plant_links(acc: SmallAccount, canary: Path, root_file: Path) -> None:
    """What a tenant could do to its own home (root does it here; the links are then the tenant's)."""
    home = acc.home
    for rel in ("public_html/img/logo.svg", "public_html/index.html", "public_html/about.html"):
        (home / rel).unlink()
    (home / "public_html" / "img").rmdir()
    (home / "public_html").rmdir()
    os.symlink(canary, home / "public_html")
    (home / ".config" / "app.ini").unlink()
    os.symlink(canary / "passwd", home / ".config" / "app.ini")
    (home / "notes.txt").unlink()
    os.link(root_file, home / "notes.txt")  # root may (fs.protected_hardlinks stops the tenant itself)
    for rel in ("public_html", ".config/app.ini"):
        os.lchown(home / rel, acc.uid, acc.gid)


@pytest.fixture
def targets(panel: Panel) -> SimpleNamespace:
    canary = root_tree(panel.base / "etc-canary", {"passwd": b"root:x:0:0::/root:/bin/bash\n", "index.html": b"root's\n"})
    root_file = panel.base / "root-owned.conf"
    root_file.write_bytes(b"setting = root-only\n")
    root_file.chmod(0o644)
    return SimpleNamespace(canary=canary, root_file=root_file)


def test_in_place_restore_does_not_follow_links_planted_in_the_home(panel: Panel, run_cli, targets) -> None:
    """Threat 1: the whole files component restored in place over a home full of planted links."""
    acc = panel.account()
    backup_id = panel.backup(acc)
    plant_links(acc, targets.canary, targets.root_file)
    canary_before = tree_manifest(targets.canary)
    root_before = fingerprint(targets.root_file)
    outside_before = outside_of(panel, acc)

    view = run_restore(panel, run_cli, acc, backup_id, "in-place")
    assert view["status"] == "done", view

    assert tree_manifest(targets.canary) == canary_before
    assert fingerprint(targets.root_file) == root_before
    assert outside_of(panel, acc) == outside_before
    # The tenant's tar replaced the links by the backed-up files (the links themselves were the tenant's).
    for rel, data in HOME_FILES.items():
        st = (acc.home / rel).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_uid == acc.uid, rel
        assert (acc.home / rel).read_bytes() == data, rel
    assert (acc.home / "public_html").is_dir() and not (acc.home / "public_html").is_symlink()
    assert (acc.home / "notes.txt").stat().st_ino != targets.root_file.stat().st_ino


def test_in_place_path_restore_through_a_planted_directory_symlink(panel: Panel, run_cli, targets) -> None:
    """Threat 2: `--path public_html/index.html` does not extract public_html itself, so tar walks through
    the planted symlink; running as the tenant, it cannot write into the root-owned directory behind it."""
    acc = panel.account()
    backup_id = panel.backup(acc)
    plant_links(acc, targets.canary, targets.root_file)
    canary_before = tree_manifest(targets.canary)
    root_before = fingerprint(targets.root_file)
    outside_before = outside_of(panel, acc)

    view = run_restore(panel, run_cli, acc, backup_id, "in-place", "--path", "public_html/index.html",
                       "--path", ".config/app.ini", "--path", "notes.txt")
    # tar, as the tenant, cannot create public_html/index.html behind the link: that member fails (a later
    # tar could refuse the link instead and succeed; either way nothing is written outside).
    assert view["status"] in ("done", "failed"), view

    assert tree_manifest(targets.canary) == canary_before
    assert fingerprint(targets.root_file) == root_before
    assert outside_of(panel, acc) == outside_before
    assert (acc.home / "notes.txt").read_bytes() == HOME_FILES["notes.txt"]
    assert (acc.home / ".config" / "app.ini").read_bytes() == HOME_FILES[".config/app.ini"]


def test_staging_restore_of_a_backup_holding_planted_links(panel: Panel, run_cli, targets) -> None:
    """Threat 3: the links are in the snapshot itself; staging restores them as links and writes nothing
    through them (and touches nothing live)."""
    acc = panel.account()
    plant_links(acc, targets.canary, targets.root_file)
    backup_id = panel.backup(acc)
    canary_before = tree_manifest(targets.canary)
    root_before = fingerprint(targets.root_file)
    outside_before = outside_of(panel, acc)
    home_before = tree_manifest(acc.home)

    view = run_restore(panel, run_cli, acc, backup_id, "staging")
    assert view["status"] == "done", view

    assert tree_manifest(targets.canary) == canary_before
    assert fingerprint(targets.root_file) == root_before
    assert outside_of(panel, acc) == outside_before
    assert tree_manifest(acc.home) == home_before
    staged = Path(view["staging_dir"]) / "home"
    assert os.readlink(staged / "public_html") == str(targets.canary)
    assert os.readlink(staged / ".config" / "app.ini") == str(targets.canary / "passwd")
    for top, dirs, files in os.walk(Path(view["staging_dir"])):
        for name in dirs + files:
            assert os.lstat(os.path.join(top, name)).st_uid == acc.uid, os.path.join(top, name)


def plain_restic(panel: Panel, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    password = panel.json("destination", "get", "local", "--show-password")["password"]
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": "/root"}
    result = subprocess.run(["restic", "--no-cache", "-r", str(panel.repo), *args], env=env, capture_output=True,
                            timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def outside() -> SimpleNamespace:
    """Two directories in /tmp that a restore must not write into: one root-owned (the tenant cannot write
    there anyway), one world-writable like /tmp itself (only tar's own handling keeps writes out)."""
    made = []
    for mode in (0o755, 0o1777):
        path = Path(tempfile.mkdtemp(prefix="jabali-outside-", dir="/tmp"))
        (path / "canary").write_bytes(b"canary\n")
        path.chmod(mode)
        made.append(path)
    yield SimpleNamespace(root=made[0], world=made[1])
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def snapshot_of(paths: list[Path]) -> dict:
    return {str(p): tree_manifest(p) for p in paths}


def test_hostile_snapshot_cannot_escape_the_staging_directory(panel: Panel, run_cli, outside) -> None:
    """Threat 4: a snapshot planted in the repository with plain restic, tagged for the account, listed by
    `snapshot sync`, restored to staging: its outward symlinks are restored as symlinks and nothing is
    written outside the staging directory (the manifest may even claim '/' as the home)."""
    acc = panel.account()
    hostile = panel.tmp_path / "hostile"
    data = hostile / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"a\n")
    (data / "sub" / "b.txt").write_bytes(b"b\n")
    os.symlink(outside.world, data / "evil")
    os.symlink(outside.root, data / "evil_root")
    os.symlink(os.path.relpath(outside.world, data), data / "evil_rel")
    os.symlink("/etc", data / "etc")
    os.symlink("..", data / "up")
    os.symlink(outside.world / "canary", data / "canary_link")
    backups = {}
    for n, files_root in enumerate((str(data), "/")):
        backup_id = f"20310101T00000{n}Z-bad00{n}"
        meta = hostile / f"meta{n}"
        meta.mkdir()
        (meta / "jabali-manifest.json").write_text(json.dumps(
            {"account": acc.user, "backup_id": backup_id, "components": {"files": [files_root]}, "databases": {}}))
        tags = ["jabali", f"account={acc.user}", f"backup={backup_id}", "component=files", "kind=account_full",
                "expect=files"]
        plain_restic(panel, "backup", "--host", "attacker", *[x for t in tags for x in ("--tag", t)], str(data),
                     str(meta / "jabali-manifest.json"))
        backups[files_root] = backup_id
    panel.cli("snapshot", "sync")
    listed = {r["backup_id"] for r in panel.json("tenant", "snapshots", env={"SUDO_USER": acc.user})}
    assert listed == set(backups.values()), "the planted backups look like the account's own"

    before = snapshot_of([outside.root, outside.world])
    outside_before = outside_of(panel, acc)
    home_before = tree_manifest(acc.home)

    for files_root, backup_id in backups.items():
        view = run_restore(panel, run_cli, acc, backup_id, "staging")
        assert view["status"] == "done", view
        staged = Path(view["staging_dir"]) / "home"
        rel = Path("." if files_root != "/" else str(data).lstrip("/"))
        assert (staged / rel / "a.txt").read_bytes() == b"a\n"
        assert (staged / rel / "sub" / "b.txt").read_bytes() == b"b\n"
        assert os.readlink(staged / rel / "evil") == str(outside.world), "restored as a link, not followed"
        assert os.readlink(staged / rel / "up") == ".."
        for top, dirs, files in os.walk(Path(view["staging_dir"])):
            for name in dirs + files:
                assert os.lstat(os.path.join(top, name)).st_uid == acc.uid

    assert snapshot_of([outside.root, outside.world]) == before
    assert not set(os.listdir("/tmp")) & ESCAPES
    assert outside_of(panel, acc) == outside_before
    assert tree_manifest(acc.home) == home_before


ESCAPES = {"escape.txt", "escape2.txt", "abs.txt", "payload.txt", "a.txt", "ok.txt"}  # names written only by an escape


def hostile_tar(outside: SimpleNamespace, prefix: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        def add(name: str, data: bytes = b"pwned\n", **attrs) -> None:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
            else:
                out.addfile(info)

        add(f"{prefix}/ok.txt", b"fine\n")
        add(f"{prefix}/../escape.txt")                                             # '..' member name
        add(f"{prefix}/sub/../../../escape2.txt")
        add(f"/{prefix}/abs-inside.txt")                                           # absolute: '/' is stripped
        add(f"{prefix}{outside.world}/abs.txt")
        add(f"{prefix}/evil", type=tarfile.SYMTYPE, linkname=str(outside.world))  # symlink, then below it
        add(f"{prefix}/evil/payload.txt")
        add(f"{prefix}/evil_root", type=tarfile.SYMTYPE, linkname=str(outside.root))
        add(f"{prefix}/evil_root/payload.txt")
        add(f"{prefix}/rel", type=tarfile.SYMTYPE, linkname="../../../../../../../.." + str(outside.world))
        add(f"{prefix}/rel/payload.txt")
        add(f"{prefix}/canary_link", type=tarfile.SYMTYPE, linkname=str(outside.world / "canary"))
        add(f"{prefix}/canary_link", b"overwrite the canary through the link\n")  # second entry, same name
        add(f"{prefix}/hl", type=tarfile.LNKTYPE, linkname=str(outside.world / "canary"))
        add(f"{prefix}/hl2", type=tarfile.LNKTYPE, linkname=f"{prefix}/../../../../../..{outside.root}/canary")
        add(f"{prefix}/hl", b"write into the hard link\n")
        add(f"{prefix}/tty", type=tarfile.CHRTYPE, devmajor=5, devminor=0, mode=0o666)
        add(f"{prefix}/suid", b"#!/bin/sh\n", mode=0o4755)
    return buf.getvalue()


def test_tar_level_attack_through_the_extraction_path(panel: Panel, outside, monkeypatch, tmp_path) -> None:
    """Threat 5: a crafted `restic dump` stream goes through restore_run._extract (the same code as a real
    restore, with restic replaced by the stream) into a staging-like directory owned by the tenant."""
    from jabali import restic, restore_run

    acc = panel.account()
    dest = panel.staging / f"{acc.user}-restore-test" / "home"
    dest.mkdir(parents=True, mode=0o700)
    os.chown(dest.parent, acc.uid, acc.gid)
    os.chown(dest, acc.uid, acc.gid)
    stream = tmp_path / "dump.tar"
    stream.write_bytes(hostile_tar(outside, "srv/home/victim"))

    @contextmanager
    def fake_popen(repo, args, *, stdin=None, stdout=None):
        assert args[0] == "dump"
        proc = subprocess.Popen(["cat", str(stream)], stdout=stdout, stderr=subprocess.PIPE)
        try:
            yield proc
        finally:
            proc.wait()

    monkeypatch.setattr(restic, "popen", fake_popen)
    src = SimpleNamespace(account=SimpleNamespace(user=acc.user), repo=SimpleNamespace(redact=lambda t: t))
    before = snapshot_of([outside.root, outside.world])
    base_before = tree_manifest(panel.base, ignore=["staging"])

    with pytest.raises(Exception) as failed:
        restore_run._extract(src, SimpleNamespace(snapshot_id="0" * 64), "/srv/home/victim", dest, [], [])
    assert "tar:" in str(failed.value), "tar reports the refused members"

    assert snapshot_of([outside.root, outside.world]) == before
    assert not set(os.listdir("/tmp")) & ESCAPES
    assert not set(os.listdir(panel.staging)) & ESCAPES
    assert tree_manifest(panel.base, ignore=["staging"]) == base_before
    assert sorted(os.listdir(dest.parent)) == ["home"], "nothing next to the destination"
    assert (dest / "ok.txt").read_bytes() == b"fine\n"
    assert (dest / "abs-inside.txt").exists(), "an absolute member lands inside, its '/' stripped"
    assert not (dest / "tty").exists() or not stat.S_ISCHR((dest / "tty").lstat().st_mode)
    suid = (dest / "suid").lstat()
    assert suid.st_uid == acc.uid, "--no-same-owner: everything extracted belongs to the tenant"
    for top, dirs, files in os.walk(dest):
        for name in dirs + files:
            assert os.lstat(os.path.join(top, name)).st_uid == acc.uid
