"""Syntactic checks shared by every input: each returns the normalised value or raises InvalidInput.

Anything that may reach a command line (names, hosts, users, paths) is held to a strict character set:
no shell metacharacters, no whitespace, no newlines.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from .errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_POSIX_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/@+=,:~-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name(field: str, value: str) -> str:
    """An object name: letters, digits, '.', '_', '-'; starts with a letter or digit; at most 63 chars."""
    if not _NAME.match(value or ""):
        raise InvalidInput(
            field, "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if value.isdigit():
        raise InvalidInput(field, "must not be all digits (it would be confused with an id)")
    return value


def hostname(field: str, value: str) -> str:
    """A DNS name or an IP address literal (IPv6 without brackets)."""
    value = (value or "").strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if not value or len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidInput(field, "must be a DNS host name or an IP address")
    return value.rstrip(".").lower()


def port(field: str, value: int | str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be a port number from 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise InvalidInput(field, "must be a port number from 1 to 65535")
    return number


def posix_user(field: str, value: str) -> str:
    if not _POSIX_USER.match(value or ""):
        raise InvalidInput(field, "must be a user name: lowercase letters, digits, '_', '.', '-' (max 32)")
    return value


def safe_path(field: str, value: str, *, absolute: bool = True, allow_empty: bool = False) -> str:
    """A path that can sit on a command line: no whitespace, quotes, shell metacharacters or '..'."""
    if not value:
        if allow_empty:
            return ""
        raise InvalidInput(field, "must not be empty")
    if not _SAFE_PATH.match(value):
        raise InvalidInput(
            field, "may contain only letters, digits and . _ / @ + = , : ~ - (no spaces or shell characters)"
        )
    if ".." in value.split("/"):
        raise InvalidInput(field, "must not contain '..'")
    if absolute and not value.startswith("/"):
        raise InvalidInput(field, "must be an absolute path")
    return value


def prefix(field: str, value: str | None) -> str:
    """A path prefix inside a bucket or container: relative, normalised without leading/trailing '/'."""
    value = (value or "").strip("/")
    return safe_path(field, value, absolute=False, allow_empty=True) if value else ""


def readable_file(field: str, value: str) -> Path:
    path = Path(safe_path(field, value))
    if not path.is_file():
        raise InvalidInput(field, f"file {value} does not exist")
    if not os.access(path, os.R_OK):
        raise InvalidInput(field, f"file {value} is not readable")
    return path


def printable_secret(field: str, value: str, *, min_len: int = 1, max_len: int = 4096) -> str:
    """A secret: printable ASCII without spaces (it is never put on a command line, but must survive env)."""
    if not value or _CONTROL.search(value) or " " in value or not value.isascii():
        raise InvalidInput(field, "must be printable ASCII without spaces or newlines")
    if not min_len <= len(value) <= max_len:
        raise InvalidInput(field, f"must be {min_len} to {max_len} characters long")
    return value


def http_url(field: str, value: str, *, allow_userinfo: bool = False, allow_path: bool = True) -> str:
    """An http(s) URL with a valid host, optional port and a safe path; no query or fragment."""
    if not value or _CONTROL.search(value) or " " in value:
        raise InvalidInput(field, "must be an http:// or https:// URL without spaces")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(field, "must start with http:// or https://")
    if parts.query or parts.fragment:
        raise InvalidInput(field, "must not have a query string or fragment")
    if (parts.username is not None or parts.password is not None) and not allow_userinfo:
        raise InvalidInput(field, "must not contain user:password@")
    try:
        hostname(field, parts.hostname or "")
        if parts.port is not None:
            port(field, parts.port)
    except ValueError:
        raise InvalidInput(field, "has an invalid port") from None
    if parts.path and parts.path != "/":
        if not allow_path:
            raise InvalidInput(field, "must not have a path")
        safe_path(field, parts.path)
    return value
