"""Hosting packages (the backup policy of their accounts) and hosting accounts (a Linux user and the
components backed up for it). Validation happens before any write; names reach command lines, so they
are held to strict character sets.
"""

from __future__ import annotations

import pwd
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import settings, validate
from .app import App
from .errors import Conflict, InvalidInput, NotFound
from .store import AccountRow, PackageRow

DEFAULT_PACKAGE = "default"
PACKAGE_DEFAULTS = {
    "keep_daily": 7,
    "keep_weekly": 4,
    "keep_monthly": 12,
    "tenant_visible": True,
    "download": True,
    "auto_approve_restores": False,
}
_DB_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


# -- packages ------------------------------------------------------------------------------------------------
def _package_values(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if key.startswith("keep_"):
            if not isinstance(value, int) or not 0 <= value <= 10000:
                raise InvalidInput("--" + key.replace("_", "-"), "must be a whole number from 0 to 10000")
        out[key] = int(value) if isinstance(value, bool) else value
    return out


def get_package(app: App, ref: str) -> PackageRow:
    pkg = app.store.package(ref)
    if pkg is None:
        raise NotFound(f"package {ref!r} not found")
    return pkg


def create_package(app: App, name: str, values: dict[str, Any]) -> PackageRow:
    validate.name("NAME", name)
    merged = {**PACKAGE_DEFAULTS, **_package_values(values)}
    if app.store.package(name) is not None:
        raise Conflict(f"NAME: a package named {name!r} already exists")
    app.store.insert_package(name, {k: int(v) for k, v in merged.items()})
    return get_package(app, name)


def ensure_default_package(app: App) -> PackageRow:
    return app.store.package(DEFAULT_PACKAGE) or create_package(app, DEFAULT_PACKAGE, {})


def update_package(app: App, ref: str, values: dict[str, Any]) -> PackageRow:
    pkg = get_package(app, ref)
    app.store.update_package(pkg.id, {k: int(v) for k, v in _package_values(values).items()})
    return get_package(app, str(pkg.id))


def delete_package(app: App, ref: str) -> PackageRow:
    pkg = get_package(app, ref)
    count = app.store.package_account_count(pkg.id)
    if count:
        raise Conflict(f"package {pkg.name!r} still has {count} account(s): move or delete them first")
    app.store.delete_package(pkg.id)
    return pkg


def package_view(pkg: PackageRow) -> dict[str, Any]:
    return asdict(pkg)


# -- accounts ------------------------------------------------------------------------------------------------
def check_user(value: str) -> str:
    validate.posix_user("USER", value)
    try:
        pwd.getpwnam(value)
    except KeyError:
        raise InvalidInput("USER", f"no Linux user named {value!r} exists on this host") from None
    return value


def check_db_name(field: str, value: str) -> str:
    if not _DB_NAME.match(value or ""):
        raise InvalidInput(field, f"{value!r} is not a database name jabali accepts (letters, digits, '_'; max 64)")
    return value


def _path(field: str, value: str) -> str:
    return validate.safe_path(field, value).rstrip("/") or "/"


def build_config(user: str, values: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Given option values (None = keep / default), return the account's component configuration."""
    config = dict(current or {})
    if values.get("home") is not None or "home" not in config:
        config["home"] = _path("--home", values.get("home") or f"/home/{user}")
    if values.get("mail_dir") is not None:
        config["mail_dir"] = _path("--mail-dir", values["mail_dir"]) if values["mail_dir"] else None
    config.setdefault("mail_dir", None)
    if values.get("crontab") is not None:
        config["crontab"] = _path("--crontab", values["crontab"]) if values["crontab"] else None
    config.setdefault("crontab", None)
    for key, option, check in (
        ("zone_files", "--zone-file", _path),
        ("databases", "--database", check_db_name),
        ("pg_databases", "--pg-database", check_db_name),
    ):
        given = values.get(key)
        if given is not None:
            config[key] = list(dict.fromkeys(check(option, v) for v in given))
        config.setdefault(key, [])
    return config


def crontab_path(account: AccountRow) -> Path:
    """The account's crontab: its override, else the system spool file of the user."""
    return Path(account.config.get("crontab") or settings.load().crontab_dir / account.user)


def get_account(app: App, user: str) -> AccountRow:
    acct = app.store.account(user)
    if acct is None:
        raise NotFound(f"account {user!r} not found")
    return acct


def create_account(app: App, user: str, package: str | None, values: dict[str, Any]) -> AccountRow:
    check_user(user)
    config = build_config(user, values)
    pkg = get_package(app, package) if package else ensure_default_package(app)
    if app.store.account(user) is not None:
        raise Conflict(f"USER: account {user!r} already exists")
    app.store.insert_account(user, pkg.id, config)
    return get_account(app, user)


def update_account(app: App, user: str, package: str | None, values: dict[str, Any]) -> AccountRow:
    acct = get_account(app, user)
    config = build_config(user, values, acct.config)
    pkg = get_package(app, package or acct.package)
    app.store.update_account(acct.id, pkg.id, config)
    return get_account(app, user)


def delete_account(app: App, user: str) -> AccountRow:
    """Stop backing the account up; its backups stay in the repositories and the catalog."""
    acct = get_account(app, user)
    app.store.delete_account(acct.id)
    return acct


def account_view(acct: AccountRow) -> dict[str, Any]:
    return {"user": acct.user, "package": acct.package, **acct.config, "crontab_path": str(crontab_path(acct))}
