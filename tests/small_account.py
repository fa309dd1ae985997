"""Small hosting accounts (a Linux user and a few home files; no databases, no mail) for the restore, tenant
and download tests, with real restic and a local destination.

``panel`` (a fixture) gives a Panel: a 0755 base directory in /tmp (so the account users can reach their
homes and staging directories), a JABALI_CONFIG that points crontab_dir, staging_parent and the download dir
into it, and a tested local destination "local". ``panel.account()`` makes a user ``jbs<hex>`` with a home of
known content, registers it with jabali and returns a SmallAccount; ``panel.backup(acc)`` backs it up to
"local" and returns the backup id. Teardown runs userdel and removes the tree.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from account_data import ensure_account_user, remove_account_user, tree_manifest


@dataclass
class SmallAccount:
    user: str
    uid: int
    gid: int
    home: Path
    crontab: Path | None
    zone: Path | None


DEST = "local"

HOME_FILES = {
    "public_html/index.html": b"<h1>hello</h1>\n",
    "public_html/about.html": b"<p>about us</p>\n",
    "public_html/img/logo.svg": b"<svg/>\n",
    "notes.txt": b"my notes\n",
    ".config/app.ini": b"[app]\nkey = value\n",
}


class Panel:
    def __init__(self, run_cli, tmp_path: Path, base: Path, template: tuple[Path, str]) -> None:
        self.run_cli = run_cli
        self.tmp_path = tmp_path
        self.base = base
        self.cron_dir = base / "crontabs"
        self.zone_dir = base / "zones"
        self.staging = base / "staging"
        self.downloads = base / "downloads"
        self.users: list[str] = []
        for d in (self.cron_dir, self.zone_dir, self.staging, base / "home"):
            d.mkdir(mode=0o755, parents=True)
        self.cron_dir.chmod(0o1730)
        self.write_config()
        # A copy of a repository initialised once per session, adopted with its password (restic init costs
        # seconds). It is named "local", so run-due's embedded default adopts it instead of making another.
        self.repo = tmp_path / "repo"
        shutil.copytree(template[0], self.repo)
        adopted = run_cli("destination", "create", "--type", "local", "--name", DEST, "--path", str(self.repo),
                          "--password-stdin", input=template[1] + "\n")
        assert adopted.exit_code == 0, adopted.output
        self.cli("destination", "test", DEST)

    def write_config(self, **download: str) -> None:
        lines = ["[paths]", f"crontab_dir = {self.cron_dir}", "hostname = panel-test",
                 "[restore]", f"staging_parent = {self.staging}",
                 "[download]", f"dir = {self.downloads}"]
        lines += [f"{k} = {v}" for k, v in download.items()]
        Path(os.environ["JABALI_CONFIG"]).write_text("\n".join(lines) + "\n")
        from jabali import settings

        settings._load.cache_clear()

    def cli(self, *args: str, env: dict[str, str] | None = None):
        result = self.run_cli(*args, env=env)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str, env: dict[str, str] | None = None):
        return json.loads(self.cli(*args, "--json", env=env).stdout)

    def account(self, package: str | None = None, *, cron: bool = False, zone: bool = False) -> SmallAccount:
        for _ in range(20):
            user = f"jbs{secrets.token_hex(3)[:5]}"
            try:
                pwd.getpwnam(user)
            except KeyError:
                break
        home = self.base / "home" / user
        uid, gid = ensure_account_user(user, home)
        self.users.append(user)
        home.mkdir(mode=0o711)
        for rel, data in HOME_FILES.items():
            path = home / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o644)
        for top, dirs, files in os.walk(home):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), uid, gid)
        os.chown(home, uid, gid)
        args = ["account", "create", user, "--home", str(home)]
        if package:
            args += ["--package", package]
        crontab = zone_file = None
        if cron:
            crontab = self.cron_dir / user
            crontab.write_text(f"# crontab of {user}\n*/5 * * * * php {home}/public_html/cron.php\n")
            crontab.chmod(0o600)
            os.chown(crontab, uid, gid)
        if zone:
            zone_file = self.zone_dir / f"db.{user}.test"
            zone_file.write_text(f"$ORIGIN {user}.test.\n@ 3600 IN A 192.0.2.10\n")
            args += ["--zone-file", str(zone_file)]
        self.cli(*args)
        return SmallAccount(user, uid, gid, home, crontab, zone_file)

    def backup(self, acc: SmallAccount, env: dict[str, str] | None = None) -> str:
        report = self.json("backup", acc.user, "--destination", DEST, env=env)
        assert report["status"] == "ok", report
        return report["backup_id"]

    def manifest(self, acc: SmallAccount) -> dict:
        return tree_manifest(acc.home)

    def cleanup(self) -> None:
        for user in self.users:
            remove_account_user(user)


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory, restic_version) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("template") / "repo"
    password = secrets.token_hex(16)
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD": password, "HOME": "/root"}
    subprocess.run(["restic", "init", "--repo", str(path), "-q"], env=env, check=True, capture_output=True)
    return path, password


@pytest.fixture
def panel(run_cli, tmp_path: Path, template_repo) -> Iterator[Panel]:
    if os.geteuid() != 0:
        pytest.skip("needs root (useradd, chown, running tar as the account)")
    base = Path(tempfile.mkdtemp(prefix="jabali-small-", dir="/tmp"))
    base.chmod(0o755)
    p = None
    try:
        p = Panel(run_cli, tmp_path, base, template_repo)
        yield p
    finally:
        if p is not None:
            p.cleanup()
        shutil.rmtree(base, ignore_errors=True)
