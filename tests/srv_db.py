"""pytest plugin: private MariaDB, PostgreSQL and Dovecot IMAP servers for the test-suite.

Every server runs from its own directory under /tmp (pytest's tmp dirs are 0700 root, but mariadbd, postgres and
the dovecot mail processes run as unprivileged users), listens on a unix socket or 127.0.0.1 only, and is stopped
by PID at teardown. Nothing here touches the system services or /etc.

Load with ``pytest_plugins = ["srv_db"]`` in tests/conftest.py (tests/ on sys.path), or
``PYTHONPATH=tests python -m pytest -p srv_db ...``.

Fixtures:
  mariadb_server  (session) -> MariaDB
  postgres_server (session) -> Postgres
  dovecot_imap    (session) -> factory ``start(maildir, owner=None, **kw) -> Imap``
Helpers:
  imap_snapshot(imap) -> {folder: sorted [(message-id or subject, sorted flags tuple)]}
  ensure_mail_user(name="jabalimail") -> str   (creates a non-root system user if missing)

This module must not import the jabali package.
"""

from __future__ import annotations

import atexit
import email.header
import email.parser
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

__all__ = [
    "MariaDB",
    "Postgres",
    "Imap",
    "imap_snapshot",
    "ensure_mail_user",
    "free_port",
    "stop_pid",
]

MAIL_USER = "jabalimail"


# ------------------------------------------------------------------------------------------------ generic helpers
def _which(*names: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/sbin", "/usr/bin")) -> str | None:
    for n in names:
        p = shutil.which(n)
        if p:
            return p
        for d in extra_dirs:
            c = os.path.join(d, n)
            if os.access(c, os.X_OK):
                return c
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead: reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return True


def stop_pid(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send ``sig`` to exactly this pid, wait up to ``timeout`` s, then SIGKILL it."""
    if not pid or not pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_tcp(host: str, port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _tail(path: str | os.PathLike, n: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def _private_tmpdir(prefix: str) -> Path:
    """A fresh dir under /tmp that unprivileged server users can traverse (mode 0755)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def _make_traversable(path: Path) -> None:
    """Add o+x to every ancestor of ``path`` that lacks it (e.g. pytest's 0700 basetemp), so a non-root
    server process can reach ``path``. Only the search bit is added, never read/write."""
    p = path.resolve()
    for d in [p, *p.parents]:
        try:
            mode = d.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)


# Fallback for abnormal exits (teardown normally stops everything first).
_ATEXIT_STOPS: dict[int, Callable[[], None]] = {}


def _register_stop(fn: Callable[[], None]) -> int:
    key = id(fn)
    _ATEXIT_STOPS[key] = fn
    return key


@atexit.register
def _stop_leftovers() -> None:
    for fn in list(_ATEXIT_STOPS.values()):
        try:
            fn()
        except Exception:
            pass
    _ATEXIT_STOPS.clear()


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what}: needs root (runs the server as a dedicated system user)")


# ------------------------------------------------------------------------------------------------------ MariaDB
@dataclass
class MariaDB:
    socket: str
    datadir: str
    pid: int
    defaults_file: str
    basedir: str
    client: str = "mariadb"
    dump: str = "mariadb-dump"
    admin: str = "mariadb-admin"
    log: str = ""

    def argv(self, tool: str | None = None) -> list[str]:
        """``[tool, --defaults-file=...]`` (the option must come first)."""
        return [tool or self.client, f"--defaults-file={self.defaults_file}"]

    def sql(self, query: str, database: str | None = None) -> str:
        """Run ``query`` with the mariadb client in batch mode (-N -B); returns stdout. Raises on error."""
        cmd = self.argv() + ["-N", "-B", "-e", query]
        if database:
            cmd.append(database)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb failed ({r.returncode}): {r.stderr.strip()}\nquery: {query}")
        return r.stdout

    def stop(self) -> None:
        if pid_alive(self.pid):
            subprocess.run(
                [self.admin, f"--defaults-file={self.defaults_file}", "shutdown"],
                capture_output=True,
                timeout=60,
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and pid_alive(self.pid):
                time.sleep(0.05)
            stop_pid(self.pid)


def _start_mariadb() -> MariaDB:
    _need_root("mariadb_server")
    mariadbd = _which("mariadbd", "mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    client = _which("mariadb", "mysql")
    dump = _which("mariadb-dump", "mysqldump")
    admin = _which("mariadb-admin", "mysqladmin")
    missing = [
        n
        for n, p in [
            ("mariadbd", mariadbd),
            ("mariadb-install-db", install_db),
            ("mariadb", client),
            ("mariadb-dump", dump),
            ("mariadb-admin", admin),
        ]
        if not p
    ]
    if missing:
        pytest.skip(f"mariadb_server: missing binaries {missing} (apt-get install mariadb-server mariadb-client)")
    try:
        pw = pwd.getpwnam("mysql")
    except KeyError:
        pytest.skip("mariadb_server: no 'mysql' system user (install mariadb-server)")

    base = _private_tmpdir("jabali-mariadb-")
    data, run = base / "data", base / "run"
    data.mkdir()
    run.mkdir()
    for d in (data, run):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    sock = run / "mysql.sock"
    log = base / "mariadbd.log"

    r = subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        capture_output=True,
        text=True,
        cwd=base,
        timeout=180,
    )
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")

    defaults = base / "client.cnf"
    defaults.write_text(
        f"[client]\nsocket={sock}\nuser=root\n"
    )
    defaults.chmod(0o644)

    with open(log, "ab") as lf:
        proc = subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--pid-file={run / 'mariadbd.pid'}",
                "--skip-networking",
                "--user=mysql",
                f"--log-error={log}",
                "--innodb-buffer-pool-size=64M",
                "--skip-name-resolve",
            ],
            stdin=subprocess.DEVNULL,
            stdout=lf,
            stderr=subprocess.STDOUT,
            cwd=base,
            start_new_session=True,
        )
    srv = MariaDB(
        socket=str(sock),
        datadir=str(data),
        pid=proc.pid,
        defaults_file=str(defaults),
        basedir=str(base),
        client=client,
        dump=dump,
        admin=admin,
        log=str(log),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ping = subprocess.run([admin, f"--defaults-file={defaults}", "ping"], capture_output=True, timeout=10)
        if ping.returncode == 0:
            return srv
        time.sleep(0.1)
    srv.stop()
    tail = _tail(log)
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"mariadbd did not come up (exit={proc.poll()}):\n{tail}")


@pytest.fixture(scope="session")
def mariadb_server():
    """A private mariadbd (--skip-networking, unix socket only); root via unix_socket auth (OS user root)."""
    srv = _start_mariadb()
    key = _register_stop(srv.stop)
    try:
        yield srv
    finally:
        srv.stop()
        _ATEXIT_STOPS.pop(key, None)
        shutil.rmtree(srv.basedir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------- Postgres
@dataclass
class Postgres:
    socket_dir: str
    port: int
    pid: int
    datadir: str
    bindir: str
    user: str = "postgres"
    log: str = ""

    @property
    def env(self) -> dict[str, str]:
        """libpq variables pointing at this server (merge into os.environ)."""
        return {"PGHOST": self.socket_dir, "PGPORT": str(self.port), "PGUSER": self.user}

    def tool(self, name: str) -> str:
        p = os.path.join(self.bindir, name)
        return p if os.access(p, os.X_OK) else (shutil.which(name) or name)

    def sql(self, query: str, database: str = "postgres") -> str:
        """Run ``query`` with psql (-X -A -t, ON_ERROR_STOP); returns stdout. Raises on error."""
        cmd = [
            self.tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", self.socket_dir, "-p", str(self.port), "-U", self.user, "-d", database, "-c", query,
        ]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}\nquery: {query}")
        return r.stdout

    def stop(self) -> None:
        if not pid_alive(self.pid):
            return
        pg_ctl = os.path.join(self.bindir, "pg_ctl")
        if os.access(pg_ctl, os.X_OK):
            subprocess.run(
                [pg_ctl, "-D", self.datadir, "-m", "fast", "-w", "-t", "30", "stop"],
                capture_output=True,
                user=self.user,
                group=pwd.getpwnam(self.user).pw_gid,
                extra_groups=[],
                cwd=self.socket_dir,
                timeout=60,
            )
        stop_pid(self.pid, signal.SIGINT)  # SIGINT = "fast" shutdown for the postmaster


def _pg_bindir() -> str | None:
    cands = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if cands:
        return str(cands[-1].parent)
    p = shutil.which("initdb")
    return str(Path(p).resolve().parent) if p else None


def _start_postgres() -> Postgres:
    _need_root("postgres_server")
    bindir = _pg_bindir()
    if not bindir or not all(os.access(os.path.join(bindir, b), os.X_OK) for b in ("initdb", "pg_ctl", "psql")):
        pytest.skip("postgres_server: PostgreSQL server binaries (initdb/pg_ctl/psql) not found (apt-get install postgresql)")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("postgres_server: no 'postgres' system user (install postgresql)")

    base = _private_tmpdir("jabali-pg-")
    os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    log = base / "postgres.log"
    port = free_port()  # only names the socket file (.s.PGSQL.<port>); there is no TCP listener
    as_pg = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd=base)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    r = subprocess.run(
        [f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, env=env, timeout=180, **as_pg,
    )  # fmt: skip
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    opts = f"-k {base} -c listen_addresses= -p {port} -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    r = subprocess.run(
        [f"{bindir}/pg_ctl", "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"],
        capture_output=True, text=True, env=env, timeout=120, **as_pg,
    )  # fmt: skip
    pid = 0
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    srv = Postgres(socket_dir=str(base), port=port, pid=pid, datadir=str(data), bindir=bindir, log=str(log))
    if r.returncode != 0 or not pid:
        srv.stop()
        tail = _tail(log)
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed ({r.returncode}): {r.stderr.strip()}\n{tail}")
    return srv


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster on a unix socket only (trust auth, superuser 'postgres')."""
    srv = _start_postgres()
    key = _register_stop(srv.stop)
    try:
        yield srv
    finally:
        srv.stop()
        _ATEXIT_STOPS.pop(key, None)
        shutil.rmtree(srv.socket_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- Dovecot IMAP
@dataclass
class Imap:
    host: str
    port: int
    pid: int
    maildir: str
    owner: str
    basedir: str
    user: str = "u"
    password: str = "pw"
    log: str = ""
    _stopped: bool = field(default=False, repr=False)

    def connect(self) -> imaplib.IMAP4:
        m = imaplib.IMAP4(self.host, self.port, timeout=30)
        m.login(self.user, self.password)
        return m

    def chown(self) -> None:
        """Give the Maildir back to the mail owner (e.g. after a restore written as root)."""
        pw = pwd.getpwnam(self.owner)
        _chown_tree(Path(self.maildir), pw.pw_uid, pw.pw_gid)

    def stop(self) -> None:
        if self._stopped:
            return
        stop_pid(self.pid)
        self._stopped = True
        shutil.rmtree(self.basedir, ignore_errors=True)


def ensure_mail_user(name: str = MAIL_USER) -> str:
    """Return ``name``, creating it as a non-root system user (no home, nologin) if missing."""
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    useradd = _which("useradd")
    if not useradd:
        raise RuntimeError("useradd not found: cannot create the IMAP test user")
    r = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise RuntimeError(f"useradd {name} failed: {r.stderr.strip()}")
    return name


_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{maildir}{mail_location_suffix}
namespace inbox {{
  inbox = yes
  separator = {separator}
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={maildir}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def _start_dovecot(
    maildir: Path,
    owner: str | None,
    *,
    separator: str = ".",
    mail_location_suffix: str = "",
    chown: bool = True,
) -> Imap:
    dovecot = _which("dovecot")
    if not dovecot or not _which("imap", extra_dirs=("/usr/lib/dovecot",)):
        pytest.skip("dovecot_imap: dovecot / dovecot imap binaries not found (apt-get install dovecot-imapd)")
    owner = owner or ensure_mail_user()
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        owner = ensure_mail_user(owner)
        pw = pwd.getpwnam(owner)
    if pw.pw_uid == 0:
        raise ValueError("dovecot refuses uid 0 as mail user ('userdb returned 0 as uid'): use a non-root owner")
    maildir = Path(maildir).absolute()
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    if chown:
        _chown_tree(maildir, pw.pw_uid, pw.pw_gid)
    _make_traversable(maildir)

    base = _private_tmpdir("jabali-dovecot-")
    (base / "run").mkdir()
    (base / "state").mkdir()
    port = free_port()
    conf = base / "dovecot.conf"
    conf.write_text(
        _DOVECOT_CONF.format(
            base=base,
            maildir=maildir,
            mail_location_suffix=mail_location_suffix,
            separator=separator,
            password="pw",
            uid=pw.pw_uid,
            gid=pw.pw_gid,
            port=port,
        )
    )
    log = base / "dovecot.log"
    # dovecot forks into the background; the daemon must not inherit pipes (-> files, not capture_output).
    startlog = base / "start.log"
    with open(startlog, "wb") as sl:
        r = subprocess.run([dovecot, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=sl, stderr=sl, timeout=60)
    r.stderr = _tail(startlog)
    pidfile = base / "run" / "master.pid"
    pid = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not pid:
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    imap = Imap(host="127.0.0.1", port=port, pid=pid, maildir=str(maildir), owner=owner, basedir=str(base), log=str(log))
    if r.returncode != 0 or not pid or not wait_tcp("127.0.0.1", port, 20):
        msg = f"dovecot did not start (rc={r.returncode}): {r.stderr.strip()}\n{_tail(log)}"
        imap.stop()
        raise RuntimeError(msg)
    return imap


@pytest.fixture(scope="session")
def dovecot_imap():
    """Factory: ``start(maildir, owner=None, *, separator='.', mail_location_suffix='', chown=True) -> Imap``.

    Serves one Maildir (Maildir++ layout: folders are ``.Name`` subdirs) on 127.0.0.1:<free port>; login is
    user "u", password "pw". ``owner`` must not be root; None -> the system user "jabalimail" (created if
    missing). The Maildir is chowned to the owner and its ancestors get o+x. Every server is stopped by its
    master.pid at session end (or earlier with ``imap.stop()``).
    """
    if os.geteuid() != 0:
        pytest.skip("dovecot_imap: needs root (dovecot switches to the mail user)")
    started: list[Imap] = []

    def stop_all() -> None:
        for i in started:
            i.stop()

    key = _register_stop(stop_all)

    def start(maildir: Path, owner: str | None = None, **kw) -> Imap:
        imap = _start_dovecot(Path(maildir), owner, **kw)
        started.append(imap)
        return imap

    try:
        yield start
    finally:
        stop_all()
        _ATEXIT_STOPS.pop(key, None)


# --------------------------------------------------------------------------------------------------- snapshot
_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\)\s+(?P<delim>"(?:[^"\\]|\\.)*"|NIL)\s+(?P<name>.+)$')
_UID_RE = re.compile(rb"UID (\d+)")
_FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")


def _unquote(b: bytes) -> str:
    s = b.decode("utf-8", "replace").strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        s = re.sub(r"\\(.)", r"\1", s[1:-1])
    return s


def _decode_header(v: str | None) -> str:
    if not v:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(v))).strip()
    except Exception:
        return v.strip()


def _list_folders(m: imaplib.IMAP4) -> list[str]:
    typ, data = m.list('""', "*")
    if typ != "OK":
        raise RuntimeError(f"IMAP LIST failed: {data}")
    folders = []
    items = iter(data)
    for item in items:
        if item is None:
            continue
        if isinstance(item, tuple):  # name sent as a literal
            mm = _LIST_RE.match(item[0].rsplit(b"{", 1)[0].strip() + b" X")
            if mm and b"\\noselect" in mm.group("flags").lower():
                continue
            folders.append(item[1].decode("utf-8", "replace"))
            continue
        mm = _LIST_RE.match(item)
        if not mm:
            continue
        if b"\\noselect" in mm.group("flags").lower() or b"\\nonexistent" in mm.group("flags").lower():
            continue
        folders.append(_unquote(mm.group("name")))
    return folders


def _quote_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_snapshot(imap: Imap, *, include_recent: bool = False) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Every selectable folder -> sorted list of (Message-ID, or Subject if none, sorted flags).

    Folders are opened read-only (EXAMINE); the session flag \\Recent is left out unless include_recent.
    Folder names are as the server lists them (modified UTF-7 for non-ASCII).
    """
    m = imap.connect()
    try:
        out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for folder in _list_folders(m):
            typ, data = m.select(_quote_mailbox(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"IMAP EXAMINE {folder!r} failed: {data}")
            count = int(data[0] or 0)
            msgs: list[tuple[str, tuple[str, ...]]] = []
            if count:
                flags: dict[int, tuple[str, ...]] = {}
                typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
                for line in data:
                    if not isinstance(line, bytes):
                        continue
                    u, f = _UID_RE.search(line), _FLAGS_RE.search(line)
                    if u and f:
                        fl = [x for x in f.group(1).decode().split() if include_recent or x != "\\Recent"]
                        flags[int(u.group(1))] = tuple(sorted(fl))
                keys: dict[int, str] = {}
                typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])")
                for item in data:
                    if not isinstance(item, tuple):
                        continue
                    u = _UID_RE.search(item[0])
                    if not u:
                        continue
                    hdr = email.parser.BytesHeaderParser().parsebytes(item[1])
                    mid = (hdr.get("Message-ID") or "").strip()
                    keys[int(u.group(1))] = mid or _decode_header(hdr.get("Subject"))
                for uid, fl in flags.items():
                    msgs.append((keys.get(uid, ""), fl))
            out[folder] = sorted(msgs)
        return out
    finally:
        try:
            m.logout()
        except Exception:
            pass
