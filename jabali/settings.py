"""Operator settings that are not per-object: database server connections and host paths.

Read from an INI file: `$JABALI_CONFIG`, else `/etc/jabali/jabali.conf` (absent = defaults). Example:

    [mysql]
    defaults_file = /etc/mysql/debian.cnf   ; passed as --defaults-file to the dump and client tools
    [postgres]
    host = /var/run/postgresql               ; socket directory or host name
    port = 5432
    user = postgres
    [paths]
    crontab_dir = /var/spool/cron/crontabs   ; where USER's crontab lives
    default_repository = /var/lib/jabali/repos/local
    hostname = panel1                         ; the restic --host for snapshots (default: this host's name)
    [restore]
    staging_parent = /home                    ; staging restores go to <staging_parent>/<user>-restore-<time>/
    dns_reload = rndc reload                  ; run (no shell) after zone files are restored in place
    [download]
    dir = /var/lib/jabali-downloads           ; archives for tenants: <dir>/<user>/ (owned by the user)
    expire_hours = 24
    min_interval_minutes = 60                 ; a tenant may start one download per interval
"""

from __future__ import annotations

import configparser
import os
import shutil
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import paths


@dataclass(frozen=True)
class Settings:
    mysql_defaults_file: str | None
    mysql_dump: str
    mysql_client: str
    pg_host: str | None
    pg_port: str | None
    pg_user: str | None
    pg_bindir: str | None
    crontab_dir: Path
    default_repository: Path
    hostname: str
    staging_parent: Path
    dns_reload: str | None
    download_dir: Path
    download_expire_hours: float
    download_min_interval_minutes: float

    def pg_tool(self, name: str) -> str:
        if self.pg_bindir:
            return str(Path(self.pg_bindir) / name)
        return shutil.which(name) or name

    def pg_args(self) -> list[str]:
        args = []
        if self.pg_host:
            args += ["-h", self.pg_host]
        if self.pg_port:
            args += ["-p", self.pg_port]
        if self.pg_user:
            args += ["-U", self.pg_user]
        return args

    def mysql_args(self) -> list[str]:
        return [f"--defaults-file={self.mysql_defaults_file}"] if self.mysql_defaults_file else []


def config_path() -> Path:
    return Path(os.environ.get("JABALI_CONFIG", "/etc/jabali/jabali.conf"))


@lru_cache(maxsize=None)
def _load(path: str, state: str) -> Settings:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    parser.read(path)

    def get(section: str, key: str) -> str | None:
        value = parser.get(section, key, fallback="").strip()
        return value or None

    return Settings(
        mysql_defaults_file=get("mysql", "defaults_file"),
        mysql_dump=get("mysql", "dump") or shutil.which("mariadb-dump") and "mariadb-dump" or "mysqldump",
        mysql_client=get("mysql", "client") or shutil.which("mariadb") and "mariadb" or "mysql",
        pg_host=get("postgres", "host"),
        pg_port=get("postgres", "port"),
        pg_user=get("postgres", "user"),
        pg_bindir=get("postgres", "bindir"),
        crontab_dir=Path(get("paths", "crontab_dir") or "/var/spool/cron/crontabs"),
        default_repository=Path(get("paths", "default_repository") or Path(state) / "repos" / "local"),
        hostname=get("paths", "hostname") or socket.gethostname(),
        staging_parent=Path(get("restore", "staging_parent") or "/home"),
        dns_reload=get("restore", "dns_reload"),
        download_dir=Path(get("download", "dir") or "/var/lib/jabali-downloads"),
        download_expire_hours=float(get("download", "expire_hours") or 24),
        download_min_interval_minutes=float(get("download", "min_interval_minutes") or 60),
    )


def load() -> Settings:
    return _load(str(config_path()), str(paths.state_dir()))
