"""The seven destination types: their fields, the syntactic rules each field must pass, and how a stored
destination becomes a restic repository (location string, environment, typed options).

Given raw option values, `build` returns (config, secrets) or raises InvalidInput naming the field; given a
stored row and its secrets, `repository` returns the `restic.Repository` to run restic against.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import secrets as pysecrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from . import paths, restic, validate
from .errors import InvalidInput

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Field:
    key: str
    help: str
    check: Check
    required: bool = True
    secret: bool = False
    default: Any = None
    envvar: str | None = None
    is_int: bool = False

    @property
    def option(self) -> str:
        return "--" + self.key.replace("_", "-")


# -- provider naming rules ---------------------------------------------------------------------------------
def _s3_bucket(field: str, value: str) -> str:
    ok = re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value or "")
    if not ok or ".." in value or ".-" in value or "-." in value or value.startswith("xn--"):
        raise InvalidInput(
            field, "must be an S3 bucket name: 3-63 lowercase letters, digits, '.', '-', starting and ending alnum"
        )
    if _is_ip(value):
        raise InvalidInput(field, "must not be formatted as an IP address")
    return value


def _gcs_bucket(field: str, value: str) -> str:
    ok = re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", value or "")
    if not ok or value.startswith("goog") or "google" in value or ".." in value or _is_ip(value):
        raise InvalidInput(
            field,
            "must be a GCS bucket name: 3-63 lowercase letters, digits, '-', '_', '.', starting and ending alnum,"
            " not starting with 'goog' nor containing 'google'",
        )
    return value


def _b2_bucket(field: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{6,50}", value or "") or value.lower().startswith("b2-"):
        raise InvalidInput(field, "must be a B2 bucket name: 6-50 letters, digits or '-', not starting with 'b2-'")
    return value


def _azure_container(field: str, value: str) -> str:
    if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", value or ""):
        raise InvalidInput(
            field, "must be an Azure container name: 3-63 lowercase letters, digits and single '-', alnum at both ends"
        )
    return value


def _azure_account(field: str, value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]{3,24}", value or ""):
        raise InvalidInput(field, "must be an Azure storage account name: 3-24 lowercase letters and digits")
    return value


def _azure_key(field: str, value: str) -> str:
    try:
        raw = base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "must be the base64 account key shown in the Azure portal") from None
    if len(raw) < 16:
        raise InvalidInput(field, "is too short to be an Azure account key")
    return value


def _b2_account_id(field: str, value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{12}|[0-9a-f]{24,25}", value or ""):
        raise InvalidInput(field, "must be a B2 account ID or application key ID (12 or 25 hex digits)")
    return value


def _b2_key(field: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9+/=_-]{20,64}", value or ""):
        raise InvalidInput(field, "must be a B2 application key (20-64 letters, digits, '+', '/')")
    return value


def _s3_access_key(field: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._+/=-]{3,128}", value or ""):
        raise InvalidInput(field, "must be an access key ID (3-128 letters, digits, '.', '_', '-', '+', '/', '=')")
    return value


def _s3_secret(field: str, value: str) -> str:
    return validate.printable_secret(field, value, min_len=3, max_len=256)


def _region(field: str, value: str) -> str:
    if value and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", value):
        raise InvalidInput(field, "must be a region name like us-east-1 (lowercase letters, digits, '-')")
    return value or ""


def _s3_endpoint(field: str, value: str) -> str:
    """Empty (AWS), host[:port] (https assumed) or an http(s):// URL without a path."""
    if not value:
        return ""
    if "://" not in value:
        value = "https://" + value
    validate.http_url(field, value, allow_path=False)
    return value.rstrip("/")


def _rest_url(field: str, value: str) -> str:
    return validate.http_url(field, value, allow_userinfo=True).rstrip("/")


def _token(field: str, value: str) -> str:
    return validate.printable_secret(field, value, min_len=8) if value else ""


def _ssh_key(field: str, value: str) -> str:
    path = validate.readable_file(field, value)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise InvalidInput(field, f"{value} is readable by group or others; ssh refuses such keys (chmod 600)")
    data = path.read_bytes()
    from cryptography.hazmat.primitives import serialization  # slow to import; only validation needs it

    try:
        serialization.load_ssh_private_key(data, password=None)
    except TypeError:
        raise InvalidInput(
            field, "is protected by a passphrase; jabali runs ssh non-interactively and needs an unencrypted key"
        ) from None
    except (ValueError, Exception):
        try:
            serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise InvalidInput(field, "is protected by a passphrase; jabali needs an unencrypted key") from None
        except (ValueError, Exception):
            raise InvalidInput(field, f"{value} is not an SSH private key (OpenSSH or PEM format)") from None
    return str(path)


def _gcs_credentials(field: str, value: str) -> str:
    path = validate.readable_file(field, value)
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(field, f"{value} is not a JSON file") from None
    if not isinstance(doc, dict) or doc.get("type") != "service_account":
        raise InvalidInput(field, 'must be a service-account key ("type": "service_account")')
    for key in ("client_email", "private_key", "project_id"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise InvalidInput(field, f"service-account key has no {key}")
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(doc["private_key"].encode(), password=None)
    except Exception:
        raise InvalidInput(field, "service-account private_key does not parse") from None
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,61}[a-z0-9]", doc["project_id"]):
        raise InvalidInput(field, "service-account project_id is not a valid project id")
    return str(path)


def _cacert(field: str, value: str) -> str:
    if not value:
        return ""
    path = validate.readable_file(field, value)
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:
        raise InvalidInput(field, f"{value} is not a PEM certificate") from None
    return str(path)


def _abs_path(field: str, value: str) -> str:
    return validate.safe_path(field, value).rstrip("/") or "/"


def _remote_path(field: str, value: str) -> str:
    return validate.safe_path(field, value, absolute=False)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


# -- the types ---------------------------------------------------------------------------------------------
def _prefix_field(help_: str = "path (prefix) inside the bucket") -> Field:
    return Field("path", help_, validate.prefix, required=False, default="")


CACERT = Field("cacert", "PEM file of CA certificates to trust (for a private CA)", _cacert, required=False, default="")

FIELDS: dict[str, tuple[Field, ...]] = {
    "local": (Field("path", "absolute repository directory on this host", _abs_path),),
    "sftp": (
        Field("host", "SSH server host name or IP address", validate.hostname),
        Field("user", "SSH user", validate.posix_user),
        Field("key", "private key file (unencrypted, mode 0600)", _ssh_key),
        Field("port", "SSH port", validate.port, required=False, default=22, is_int=True),
        Field("path", "repository path on the server (absolute, or relative to the user's home)", _remote_path),
    ),
    "s3": (
        Field("endpoint", "S3 endpoint URL or host[:port]; empty for AWS", _s3_endpoint, required=False, default=""),
        Field("region", "region, e.g. us-east-1", _region, required=False, default=""),
        Field("bucket", "bucket name", _s3_bucket),
        Field("access_key", "access key ID", _s3_access_key, secret=True, envvar="JABALI_S3_ACCESS_KEY"),
        Field("secret_key", "secret access key", _s3_secret, secret=True, envvar="JABALI_S3_SECRET_KEY"),
        _prefix_field(),
        CACERT,
    ),
    "b2": (
        Field("account_id", "B2 account ID or application key ID", _b2_account_id),
        Field("application_key", "B2 application key", _b2_key, secret=True, envvar="JABALI_B2_APPLICATION_KEY"),
        Field("bucket", "bucket name", _b2_bucket),
        _prefix_field(),
        CACERT,
    ),
    "azure": (
        Field("account_name", "storage account name", _azure_account),
        Field("account_key", "storage account key (base64)", _azure_key, secret=True, envvar="JABALI_AZURE_ACCOUNT_KEY"),
        Field("container", "blob container name", _azure_container),
        _prefix_field("path (prefix) inside the container"),
        CACERT,
    ),
    "gcs": (
        Field("bucket", "bucket name", _gcs_bucket),
        Field("credentials", "service-account JSON key file", _gcs_credentials),
        _prefix_field(),
        CACERT,
    ),
    "rest": (
        Field("url", "REST server URL (https recommended; user:password@ allowed)", _rest_url, envvar="JABALI_REST_URL"),
        Field("token", "bearer token (optional)", _token, required=False, secret=True, envvar="JABALI_REST_TOKEN"),
        CACERT,
    ),
}

TYPES = tuple(FIELDS)
ALL_FIELDS: dict[str, Field] = {f.key: f for fields in FIELDS.values() for f in fields}
REPO_PASSWORD = "repo_password"
REST_PASSWORD = "rest_password"


def new_password() -> str:
    """A random repository password: 32 bytes (256 bits), URL-safe base64."""
    return pysecrets.token_urlsafe(32)


def build(
    type_: str,
    values: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    stored_secrets: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Given a type and option values (None = not given), merged over an existing config and secrets,
    return the validated (config, secrets) or raise InvalidInput naming the first bad field."""
    if type_ not in FIELDS:
        raise InvalidInput("--type", f"must be one of {', '.join(TYPES)}")
    fields = FIELDS[type_]
    allowed = {f.key for f in fields}
    for key, value in values.items():
        if value is not None and key not in allowed:
            raise InvalidInput("--" + key.replace("_", "-"), f"does not apply to a {type_} destination")
    new_config: dict[str, Any] = {}
    new_secrets: dict[str, str] = dict(stored_secrets or {})
    new_secrets.pop(REPO_PASSWORD, None)
    for f in fields:
        given = values.get(f.key)
        if given is None:
            given = new_secrets.get(f.key) if f.secret else (config or {}).get(f.key)
        if given is None or given == "":
            if f.required:
                raise InvalidInput(f.option, "is required" + (f" (or set {f.envvar})" if f.envvar else ""))
            given = f.default
        if isinstance(given, str) and ("\n" in given or "\r" in given or "\x00" in given):
            raise InvalidInput(f.option, "must not contain newlines or control characters")
        checked = f.check(f.option, given) if given not in (None, "") else given
        if f.secret:
            if checked:
                new_secrets[f.key] = checked
            else:
                new_secrets.pop(f.key, None)
        else:
            new_config[f.key] = checked
    if type_ == "rest":
        _split_rest_credentials(new_config, new_secrets, values.get("url") is not None)
    if type_ == "gcs":
        new_config["project_id"] = json.loads(open(new_config["credentials"]).read())["project_id"]
    return new_config, new_secrets


def _split_rest_credentials(config: dict[str, Any], secrets: dict[str, str], url_given: bool) -> None:
    """Move user:password out of a REST URL: the user stays in config, the password becomes a secret.
    Both are stored decoded (a URL carries them percent-encoded, e.g. p%40ss for p@ss)."""
    parts = urlsplit(config["url"])
    if url_given:
        config.pop("user", None)
        secrets.pop(REST_PASSWORD, None)
        if parts.username is not None:
            config["user"] = unquote(parts.username)
            if parts.password:
                secrets[REST_PASSWORD] = unquote(parts.password)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        config["url"] = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if secrets.get("token") and config.get("user"):
        raise InvalidInput("--token", "cannot be combined with user:password@ in --url (choose one way to log in)")


def location(type_: str, config: Mapping[str, Any]) -> str:
    """The repository location with no credentials in it (what `list` and `get` show)."""
    c = config
    if type_ == "local":
        return str(c["path"])
    if type_ == "sftp":
        host = f"[{c['host']}]" if ":" in c["host"] else c["host"]
        return f"sftp:{c['user']}@{host}:{c['path']}"
    if type_ == "s3":
        base = c["endpoint"] or "s3.amazonaws.com"
        return f"s3:{base}/{c['bucket']}" + (f"/{c['path']}" if c["path"] else "")
    if type_ == "b2":
        return f"b2:{c['bucket']}:{c['path'] or '/'}"
    if type_ == "azure":
        return f"azure:{c['container']}:/{c['path']}"
    if type_ == "gcs":
        return f"gs:{c['bucket']}:/{c['path']}"
    if type_ == "rest":
        if c.get("user"):
            parts = urlsplit(c["url"])
            return "rest:" + urlunsplit((parts.scheme, f"{quote(c['user'], safe='')}@{parts.netloc}", parts.path, "", ""))
        return f"rest:{c['url']}"
    raise InvalidInput("--type", f"unknown destination type {type_}")


def repository(type_: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> restic.Repository:
    """Given a stored destination, return how restic reaches it (secrets only in env/fd, never argv)."""
    password = secrets[REPO_PASSWORD]
    env: dict[str, str] = {}
    args: list[str] = []
    loc = location(type_, config)
    bearer = None
    if config.get("cacert"):
        args += ["--cacert", config["cacert"]]
    ssh_log = None
    if type_ == "sftp":
        args += ["-o", "sftp.command=" + sftp_command(config)]
        ssh_log = str(ssh_log_path(config))
    elif type_ == "s3":
        env["AWS_ACCESS_KEY_ID"] = secrets["access_key"]
        env["AWS_SECRET_ACCESS_KEY"] = secrets["secret_key"]
        if config["region"]:
            env["AWS_DEFAULT_REGION"] = config["region"]
    elif type_ == "b2":
        env["B2_ACCOUNT_ID"] = config["account_id"]
        env["B2_ACCOUNT_KEY"] = secrets["application_key"]
    elif type_ == "azure":
        env["AZURE_ACCOUNT_NAME"] = config["account_name"]
        env["AZURE_ACCOUNT_KEY"] = secrets["account_key"]
    elif type_ == "gcs":
        env["GOOGLE_APPLICATION_CREDENTIALS"] = config["credentials"]
        env["GOOGLE_PROJECT_ID"] = config["project_id"]
    elif type_ == "rest":
        parts = urlsplit(config["url"])
        if secrets.get("token"):
            bearer = restic.Bearer(config["url"], secrets["token"], config.get("cacert") or None)
        elif config.get("user"):
            userinfo = quote(config["user"], safe="") + ":" + quote(secrets.get(REST_PASSWORD, ""), safe="")
            loc = "rest:" + urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, "", ""))
    hidden = tuple(v for k, v in secrets.items() if k != REPO_PASSWORD)
    if secrets.get(REST_PASSWORD):
        hidden += (quote(secrets[REST_PASSWORD], safe=""),)  # as it appears inside RESTIC_REPOSITORY
    return restic.Repository(loc, password, env=env, args=tuple(args), bearer=bearer, secrets=hidden, ssh_log=ssh_log)


def ssh_log_path(config: Mapping[str, Any]) -> Path:
    """Where ssh writes its own errors for this destination (`ssh -E`): restic 0.14 relays ssh's stderr from
    a goroutine that races its own exit, so "Permission denied" or "Host key verification failed" sometimes
    never reaches restic's stderr. restic.run reads this file when restic fails."""
    return paths.sub_dir("ssh") / f"errors-{lock_name('sftp', config)}.log"


def sftp_command(config: Mapping[str, Any]) -> str:
    """The ssh command restic runs for SFTP: batch mode, the destination's key, jabali's own known_hosts
    (trust on first use, then strict), errors to a log file jabali reads (see ssh_log_path)."""
    known_hosts = paths.sub_dir("ssh") / "known_hosts"
    validate.safe_path("state directory", str(known_hosts))
    return " ".join(
        [
            "ssh",
            "-E", str(ssh_log_path(config)),
            "-i", config["key"],
            "-p", str(config["port"]),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=30",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "LogLevel=ERROR",
            f"{config['user']}@{config['host']}",
            "-s", "sftp",
        ]
    )


def lock_name(type_: str, config: Mapping[str, Any]) -> str:
    """A file-system-safe name identifying the repository, for per-repository locks."""
    return hashlib.sha256(location(type_, config).encode()).hexdigest()[:24]
