"""Who a tenant is, and what their package lets them do. A tenant never names an account: it is the
invoking user (`SUDO_USER` when root runs jabali through sudo, else the current user)."""

from __future__ import annotations

import getpass
import os

from . import accounts
from .app import App
from .errors import Conflict, InvalidInput
from .store import AccountRow, PackageRow


def identity() -> str:
    if os.geteuid() == 0:
        user = os.environ.get("SUDO_USER", "")
        if not user or user == "root":
            raise InvalidInput("tenant", "run `jabali tenant ...` as the tenant, through sudo (root is not a tenant)")
        return user
    return getpass.getuser()


def current(app: App) -> tuple[AccountRow, PackageRow]:
    user = identity()
    account = app.store.account(user)
    if account is None:
        raise InvalidInput("tenant", f"{user} is not a hosting account on this panel")
    return account, accounts.get_package(app, account.package)


def require_visible(pkg: PackageRow) -> None:
    if not pkg.tenant_visible:
        raise Conflict(
            "tenant-visible backups are disabled for your package" +
            (" (only `jabali tenant download` is available)" if pkg.download else "")
        )


def require_download(pkg: PackageRow) -> None:
    if not pkg.download:
        raise Conflict("Backup Download is disabled for your package")
