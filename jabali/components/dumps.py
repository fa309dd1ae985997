"""Database dumps as streams: one stream per engine, made of complete per-database dumps, each preceded
by a marker comment line, so the stream replays as-is with the engine's client (plain-restic disaster
recovery: `restic dump latest /mysql.sql | mariadb`) and jabali can still restore one database alone.

Markers carry a random per-stream nonce, announced on the stream's first line: a tenant who writes a
marker-looking line into a stored procedure body cannot forge a section boundary (which would make jabali
replay tenant-written SQL as a separate statement stream).

MariaDB/MySQL sections: `mariadb-dump --single-transaction --add-drop-database --databases DB` (drops and
recreates DB on replay). PostgreSQL sections: `pg_dump --create --clean --if-exists DB` (replayed through
`psql -d postgres`, it drops and recreates DB and reconnects to it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..settings import Settings

_HEADER_LINE = re.compile(rb"^-- jabali-stream: (?P<nonce>[0-9a-f]{32})\n$")
_MARKER_LINE = re.compile(rb"^-- jabali-section: (?P<nonce>[0-9a-f]{32}) (?P<engine>mysql|postgres) (?P<db>[A-Za-z0-9_]{1,64})\n$")
STDIN_NAMES = {"mysql": "mysql.sql", "postgres": "postgres.sql"}


@dataclass(frozen=True)
class Section:
    engine: str
    database: str
    argv: list[str]

    def marker(self, nonce: str) -> bytes:
        return f"-- jabali-section: {nonce} {self.engine} {self.database}\n".encode()


def new_nonce() -> str:
    return secrets.token_hex(16)


def header(nonce: str) -> bytes:
    return f"-- jabali-stream: {nonce}\n".encode()


def trailer(nonce: str) -> bytes:
    """Written only after every dump succeeded: a stream without it is truncated."""
    return f"-- jabali-end: {nonce}\n".encode()


def mysql_sections(databases: Iterable[str], settings: Settings) -> list[Section]:
    base = [settings.mysql_dump, *settings.mysql_args(), "--single-transaction", "--quick", "--routines",
            "--triggers", "--events", "--hex-blob", "--add-drop-database", "--databases"]
    return [Section("mysql", db, [*base, db]) for db in databases]


def postgres_sections(databases: Iterable[str], settings: Settings) -> list[Section]:
    base = [settings.pg_tool("pg_dump"), *settings.pg_args(), "--create", "--clean", "--if-exists", "--no-password"]
    return [Section("postgres", db, [*base, db]) for db in databases]


class StreamError(ValueError):
    pass


def split(chunks: Iterable[bytes]) -> Iterator[tuple[str, str, Iterator[bytes]]]:
    """Given the bytes of a stream, yield (engine, database, line iterator) per section, in order.
    Each line iterator must be consumed before asking for the next section."""
    lines = _lines(chunks)
    first = next(lines, b"")
    head = _HEADER_LINE.match(first)
    if not head:
        raise StreamError("not a jabali database stream (no header line)")
    nonce = head["nonce"]

    end = b"-- jabali-end: " + nonce + b"\n"

    def is_marker(line: bytes) -> re.Match[bytes] | None:
        match = _MARKER_LINE.match(line)
        return match if match and match["nonce"] == nonce else None

    pending: bytes | None = next(lines, None)
    while pending is not None:
        match = is_marker(pending)
        if not match:
            raise StreamError("database stream does not start with a section marker")
        state: dict[str, bytes | None] = {"next": None}

        def body(state: dict[str, bytes | None] = state) -> Iterator[bytes]:
            for line in lines:
                if line == end:
                    state["end"] = line
                    return
                if is_marker(line):
                    state["next"] = line
                    return
                yield line

        section = body()
        yield match["engine"].decode(), match["db"].decode(), section
        for _ in section:  # drain what the caller did not read
            pass
        if state.get("end"):
            return
        pending = state["next"]
    raise StreamError("database stream is truncated (no end marker): it was cut off during the backup")


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if rest:
        yield rest
