"""A realistic hosting account (home tree, Maildir, DNS zone, crontab, MariaDB and PostgreSQL databases) for
end-to-end backup/restore tests, plus helpers that fingerprint what a restore must reproduce.

    acc = build_account(base, "jbt1a2b3", mariadb=mariadb_server, postgres=postgres_server)
    before = tree_manifest(acc.home)
    ... back up, wipe, restore ...
    assert tree_manifest(acc.home) == before

Fixture (function scope): ``hosting_account`` -> AccountData, built with the session ``mariadb_server`` and
``postgres_server`` fixtures of srv_db under a fresh 0755 dir in /tmp, for a new Linux user ``jbt<5 hex>``.
Teardown drops the databases, runs userdel and removes the tree. Import the fixture into the test module
(``from account_data import hosting_account  # noqa: F401``) or add "account_data" to conftest's pytest_plugins
(a test module that both imports account_data and lists it in pytest_plugins gets PytestAssertRewriteWarning).

Everything is deterministic for a given user name: file contents (the "random" file is seeded), names, modes and
mtimes, so two builds for the same user give identical manifests. Dovecot writes index files into the Maildir
and may rewrite dovecot-uidlist / move mail from new/ to cur/ once it serves it: take manifests of the Maildir
before starting dovecot on it, or pass ``ignore=DOVECOT_RUNTIME`` and compare only the message files.

This module must not import the jabali package.
"""

from __future__ import annotations

import fnmatch
import grp
import hashlib
import os
import pwd
import random
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "AccountData",
    "build_account",
    "ensure_account_user",
    "remove_account_user",
    "drop_account_databases",
    "tree_manifest",
    "hardlink_groups",
    "mysql_fingerprint",
    "pg_fingerprint",
    "load_mysql_dump",
    "load_pg_dump",
    "mysql_dump",
    "pg_dump",
    "DOVECOT_RUNTIME",
    "hosting_account",
]

#: fnmatch patterns (against the relative path) of files dovecot creates or rewrites while serving a Maildir.
DOVECOT_RUNTIME = ("*dovecot.index*", "*dovecot.list.index*", "*dovecot-uidlist*", "*dovecot-uidvalidity*")

OTHER_OWNER = "www-data"  # owner/group of the "foreign" files (falls back to nobody/nogroup)
BASE_MTIME = 1_600_000_000  # 2020-09-13; every entry gets BASE_MTIME + k*3600 for a fixed k
ODD_NAME = "odd name\twith tab\nand newline ünïcødé ✓ 'single' \"double\" $(x) `y` \\ ;&|.txt"
DASH_NAME = "-rf --leading-dash.txt"
HOSTNAME = "jabali-test"


@dataclass
class AccountData:
    user: str
    uid: int
    gid: int
    home: Path
    mail_dir: Path
    zone_files: list[Path]
    crontab: Path
    mysql_databases: list[str]
    pg_databases: list[str]
    # extras
    base: Path = Path()
    domain: str = ""
    zone_dir: Path = Path()
    crontab_dir: Path = Path()
    #: what imap_snapshot() of a dovecot serving mail_dir must return (folder -> [(Message-ID, flags)])
    imap_expected: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    #: IMAP folders listed in the Maildir "subscriptions" file
    subscriptions: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ Linux user
def ensure_account_user(user: str, home: Path) -> tuple[int, int]:
    """Create ``user`` (own group, home ``home`` not created, nologin shell) unless it exists; -> (uid, gid)."""
    try:
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    r = subprocess.run(
        ["useradd", "--user-group", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
         "--comment", "jabali test account", user],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise RuntimeError(f"useradd {user} failed: {r.stderr.strip()}")
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def remove_account_user(user: str) -> None:
    """userdel ``user`` (and its group); retries with -f if a process (e.g. a lingering imap) still uses it."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return
    r = subprocess.run(["userdel", user], capture_output=True, text=True)
    if r.returncode != 0 and "currently used" in r.stderr:
        r = subprocess.run(["userdel", "-f", user], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"userdel {user} failed: {r.stderr.strip()}")
    try:  # USERGROUPS_ENAB normally removes the group too
        grp.getgrnam(user)
        subprocess.run(["groupdel", user], capture_output=True)
    except KeyError:
        pass


def _other_ids() -> tuple[int, int]:
    for u in (OTHER_OWNER, "nobody"):
        try:
            pw = pwd.getpwnam(u)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    return 65534, 65534


# ------------------------------------------------------------------------------------------------ home tree
def _write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def _mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def _build_home(home: Path, user: str, domain: str) -> None:
    _mkdir(home, 0o711)
    pub = _mkdir(home / "public_html", 0o750)  # group www-data (set in _fix_owners)
    _write(
        pub / "index.php",
        f"<?php\n// {domain}\n$db = new PDO('mysql:host=localhost;dbname={user}_shop', '{user}', 's3cr3t');\n"
        "echo \"Grüße aus dem Backup-Test ✓\";\n",
    )
    _write(pub / ".htaccess", "RewriteEngine On\nRewriteRule ^(.*)$ index.php [QSA,L]\n")
    _write(pub / "wp-config.php", f"<?php define('DB_NAME', '{user}_blog'); define('DB_PASSWORD', 'p@ss');\n", 0o600)
    _write(pub / "assets" / "css" / "style.css", "body { font-family: sans-serif; }\n")
    _write(pub / "assets" / "js" / "app.js", "console.log('hi');\n")
    _write(pub / "assets" / "img" / "logo.png", bytes(range(256)) * 8)
    _write(pub / "releases" / "v1" / "VERSION", "1.0.0\n")
    _write(pub / "releases" / "v2" / "VERSION", "2.0.0\n")
    _write(pub / "cgi-bin" / "hello.cgi", "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho hello\n", 0o755)
    _mkdir(pub / "uploads" / "2024" / "01" / "empty-dir", 0o755)  # empty dir
    os.symlink("releases/v2", pub / "current")  # relative symlink to a dir
    os.symlink("../assets/css/style.css", pub / "releases" / "style-link.css")  # relative symlink to a file
    os.symlink("../does/not/exist.txt", pub / "dangling-link")  # dangling
    # uploaded through the web server: owned by www-data
    _write(pub / "uploads" / "2024" / "01" / "from-webserver.jpg", b"\xff\xd8\xff\xe0JFIF\x00" + b"\x00" * 100)
    _write(pub / "cache.tmp", b"", 0o644)  # empty file

    bin_ = _mkdir(home / "bin", 0o750)
    _write(bin_ / "deploy.sh", "#!/bin/sh\nset -e\necho deploying\n", 0o755)
    priv = _mkdir(home / "private", 0o750)
    _write(priv / "secret.key", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", 0o600)
    _write(priv / ODD_NAME, "odd\n", 0o644)
    _write(priv / DASH_NAME, "dash\n", 0o644)
    _write(priv / "ünïcødé-ディレクトリ" / "日本語.txt", "こんにちは\n", 0o644)
    rnd = random.Random(f"jabali-{user}")
    _write(priv / "random.bin", rnd.randbytes(1 << 20), 0o600)  # ~1 MB, incompressible, reproducible
    # hardlink pair
    _write(home / "docs" / "report.txt", "quarterly report\n" * 100, 0o644)
    os.link(home / "docs" / "report.txt", home / "docs" / "report-hardlink.txt")
    _write(home / "docs" / "empty.txt", b"", 0o600)
    _mkdir(home / "tmp", 0o700)
    _write(home / ".bashrc", "export PATH=$HOME/bin:$PATH\n", 0o644)
    _write(home / ".ssh" / "authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJabaliTest test@jabali\n", 0o600)
    (home / ".ssh").chmod(0o700)
    _mkdir(home / "logs", 0o750)
    _write(home / "logs" / "access.log", "127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" 200 5\n")


def _chown_all(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _fix_owners(home: Path, uid: int, gid: int) -> None:
    _chown_all(home, uid, gid)
    ouid, ogid = _other_ids()
    os.chown(home / "public_html", uid, ogid)  # user:www-data 0750, the usual hosting layout
    os.chown(home / "public_html" / "uploads" / "2024" / "01" / "from-webserver.jpg", ouid, ogid)
    os.chown(home / "logs" / "access.log", 0, ogid)  # root:www-data, written by the web server


def _walk_all(root: Path) -> Iterator[Path]:
    """Every entry below root (not following symlinks), deepest first, then root itself."""
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for n in sorted(files + dirs):
            yield Path(dirpath) / n
    yield root


def _fix_mtimes(root: Path, offset: int = 0) -> None:
    """Deterministic mtimes: sorted relative path order; dirs are set after their contents (bottom-up)."""
    entries = sorted(_walk_all(root), key=lambda p: os.fsencode(p.relative_to(root)))
    index = {p: i for i, p in enumerate(entries)}
    for p in _walk_all(root):
        t = BASE_MTIME + (offset + index[p]) * 3600
        os.utime(p, (t, t), follow_symlinks=False)


# --------------------------------------------------------------------------------------------------- Maildir
_FLAG_NAMES = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}

# folder dir name ("" = INBOX) -> keywords (letter a = index 0)
_KEYWORDS = {"": ["$Forwarded", "Junk"], ".Work": ["$Important", "Invoice"]}

# (folder dir, sub dir, flags or None for new/, subject)
_MESSAGES = [
    ("", "cur", "S", "Welcome to your mailbox ✓"),
    ("", "cur", "FS", "Flagged: server renewal"),
    ("", "cur", "RS", "Re: lunch?"),
    ("", "cur", "", "Unread but already in cur"),
    ("", "cur", "Sa", "Forwarded newsletter"),
    ("", "new", None, "Brand new message"),
    ("", "new", None, "Another new one with attachment"),
    (".Sent", "cur", "S", "Quote for Müller GmbH"),
    (".Sent", "cur", "S", "Invoice #42"),
    (".Work", "cur", "FSa", "Deadline friday"),
    (".Work", "cur", "Sb", "Invoice reminder"),
    (".Work", "cur", "RS", "Re: standup notes"),
    (".Work", "new", None, "New ticket"),
    (".Work.Projects", "cur", "", "Project kickoff"),
    (".Work.Projects", "cur", "FRS", "Specs v2"),
    (".Entw&APw-rfe", "cur", "DS", "Draft: Entwurf für Angebot"),
]
_SUBSCRIPTIONS = ["Sent", "Work", "Work.Projects", "Entw&APw-rfe"]


def _message(user: str, domain: str, n: int, subject: str, attachment: bool) -> tuple[str, bytes]:
    import email.header

    msgid = f"<{user}.{n}@{domain}>"
    subj = email.header.Header(subject, "utf-8").encode() if not subject.isascii() else subject
    head = (
        f"Return-Path: <sender{n}@example.org>\n"
        f"From: Sender {n} <sender{n}@example.org>\n"
        f"To: {user} <{user}@{domain}>\n"
        f"Subject: {subj}\n"
        f"Date: Mon, {1 + n % 28:02d} Jan 2024 10:{n:02d}:00 +0000\n"
        f"Message-ID: {msgid}\n"
        "MIME-Version: 1.0\n"
    )
    if not attachment:
        body = head + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        body += f"Hello {user},\nmessage {n}: {subject}\nGrüße ✓\n"
        return msgid, body.encode()
    import base64

    blob = base64.encodebytes(bytes(range(256)) * 4).decode()
    body = head + (
        'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=us-ascii\n\n'
        "see attachment\n\n--b1\nContent-Type: application/octet-stream; name=\"data.bin\"\n"
        'Content-Disposition: attachment; filename="data.bin"\nContent-Transfer-Encoding: base64\n\n'
        f"{blob}\n--b1--\n"
    )
    return msgid, body.encode()


def _build_maildir(md: Path, user: str, domain: str) -> tuple[dict, list[str]]:
    folders = sorted({f for f, *_ in _MESSAGES})
    expected: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    uidlists: dict[str, list[str]] = {f: [] for f in folders}
    for f in folders:
        fd = md / f if f else md
        for sub in ("cur", "new", "tmp"):
            _mkdir(fd / sub, 0o700)
        if f:
            _write(fd / "maildirfolder", b"", 0o600)
        fd.chmod(0o700)
        expected["INBOX" if not f else f[1:]] = []
    for n, (f, sub, flags, subject) in enumerate(_MESSAGES, start=1):
        fd = md / f if f else md
        msgid, data = _message(user, domain, n, subject, attachment="attachment" in subject)
        vsize = len(data) + data.count(b"\n")  # W= : size with CRLF line ends
        base = f"{BASE_MTIME + n * 60}.M{n}P{4000 + n}.{HOSTNAME},S={len(data)},W={vsize}"
        name = base if flags is None else f"{base}:2,{flags}"
        _write(fd / sub / name, data, 0o600)
        uidlists[f].append(base)
        kws = _KEYWORDS.get(f, [])
        names = [_FLAG_NAMES[c] if c.isupper() else kws[ord(c) - ord("a")] for c in (flags or "")]
        expected["INBOX" if not f else f[1:]].append((msgid, tuple(sorted(names))))
    for f, bases in uidlists.items():
        fd = md / f if f else md
        validity = BASE_MTIME + folders.index(f)
        guid = hashlib.md5(f"{user}/{f}".encode()).hexdigest()
        lines = [f"3 V{validity} N{len(bases) + 1} G{guid}"] + [f"{i} :{b}" for i, b in enumerate(bases, 1)]
        _write(fd / "dovecot-uidlist", "\n".join(lines) + "\n", 0o600)
        if f in _KEYWORDS:
            _write(fd / "dovecot-keywords", "".join(f"{i} {k}\n" for i, k in enumerate(_KEYWORDS[f])), 0o600)
    _write(md / "subscriptions", "".join(s + "\n" for s in _SUBSCRIPTIONS), 0o600)
    _write(md / "maildirsize", "1073741824S,10000C\n" + "".join(f"{len(d)} 1\n" for d in ("x" * 100, "y" * 200)), 0o600)
    return {k: sorted(v) for k, v in expected.items()}, list(_SUBSCRIPTIONS)


# ----------------------------------------------------------------------------------------- zone and crontab
def _zone(domain: str) -> str:
    return f"""\
$ORIGIN {domain}.
$TTL 3600
@\tIN\tSOA\tns1.{domain}. hostmaster.{domain}. (
\t\t2024010101 ; serial
\t\t3600       ; refresh
\t\t900        ; retry
\t\t1209600    ; expire
\t\t300 )      ; negative TTL
\tIN\tNS\tns1.{domain}.
\tIN\tNS\tns2.{domain}.
\tIN\tA\t192.0.2.10
\tIN\tAAAA\t2001:db8::10
\tIN\tMX\t10 mail.{domain}.
\tIN\tTXT\t"v=spf1 mx a -all"
ns1\tIN\tA\t192.0.2.1
ns2\tIN\tA\t192.0.2.2
mail\tIN\tA\t192.0.2.25
www\tIN\tCNAME\t{domain}.
_dmarc\tIN\tTXT\t"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"
default._domainkey\tIN\tTXT\t"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC7"
"""


def _crontab(user: str, home: Path) -> str:
    return (
        "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n"
        f"MAILTO={user}@localhost\n"
        "SHELL=/bin/sh\n"
        f"*/15 * * * * php {home}/public_html/index.php cron >/dev/null 2>&1\n"
        f"30 2 * * 1-5 {home}/bin/deploy.sh > {home}/logs/deploy-$(date +\\%F).log 2>&1\n"
        "@reboot echo started\n"
    )


# ------------------------------------------------------------------------------------------------- MariaDB
def _mysql_run(mariadb, sql: bytes | str, database: str | None = None) -> str:
    """Feed ``sql`` to the mariadb client on stdin (no argv length limit, DELIMITER works, binary-safe)."""
    cmd = mariadb.argv() + ["--default-character-set=utf8mb4", "--binary-mode", "-N", "-B"]
    if database:
        cmd.append(database)
    data = sql.encode() if isinstance(sql, str) else sql
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"mariadb failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}")
    return r.stdout.decode("utf-8", "replace")


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_blob() -> str:
    return (bytes(range(256)) * 16 + b"'\"\\\x00\n\r\x1a").hex()


def _mysql_shop(db: str) -> str:
    return f"""
CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE {db};
CREATE TABLE products (
  id INT AUTO_INCREMENT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL UNIQUE,
  name VARCHAR(200) NOT NULL,
  description TEXT NULL,
  price DECIMAL(10,2) NOT NULL,
  stock INT NOT NULL DEFAULT 0,
  image BLOB NULL,
  created DATETIME NOT NULL DEFAULT '2024-01-01 00:00:00'
) ENGINE=InnoDB;
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(100) NOT NULL,
  note TEXT NULL,
  created DATETIME NOT NULL
) ENGINE=InnoDB;
CREATE TABLE order_items (
  order_id INT NOT NULL,
  product_id INT NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, product_id),
  FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE,
  FOREIGN KEY (product_id) REFERENCES products(id)
) ENGINE=InnoDB;
CREATE TABLE legacy_latin1 (id INT PRIMARY KEY, txt VARCHAR(50)) ENGINE=MyISAM DEFAULT CHARSET=latin1;
INSERT INTO products (sku, name, description, price, stock, image) VALUES
  ('MUG-1', 'Kaffeebecher „Grüße“ ☕', 'Steingut, 0,3 l', 12.50, 100, X'{_mysql_blob()}'),
  ('TEE-2', 'T-shirt 日本語 🐘', NULL, 19.99, 50, NULL),
  ('BK-3', 'Book \\'quoted\\' "double" back\\\\slash', 'line1\\nline2\\ttab', 7.00, 10, X''),
  ('NUL-4', 'Nulls everywhere', NULL, 0.00, 0, NULL);
INSERT INTO legacy_latin1 VALUES (1, 'café crème'), (2, NULL);
DELIMITER ;;
CREATE TRIGGER order_items_stock AFTER INSERT ON order_items FOR EACH ROW
BEGIN
  UPDATE products SET stock = stock - NEW.qty WHERE id = NEW.product_id;
END;;
CREATE FUNCTION order_total(oid INT) RETURNS DECIMAL(12,2) READS SQL DATA
BEGIN
  RETURN (SELECT COALESCE(SUM(i.qty * p.price), 0) FROM order_items i JOIN products p ON p.id = i.product_id
          WHERE i.order_id = oid);
END;;
DELIMITER ;
INSERT INTO orders (customer, note, created)
  SELECT CONCAT('Kunde ', n, IF(n % 7 = 0, ' — Zoë', '')), IF(n % 3 = 0, NULL, CONCAT('note ', n)),
         TIMESTAMP('2024-01-01') + INTERVAL n HOUR
  FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200) SELECT n FROM s) AS s;
INSERT INTO order_items (order_id, product_id, qty) SELECT id, 1 + id % 3, 1 + id % 2 FROM orders;
CREATE VIEW order_totals AS SELECT o.id, o.customer, order_total(o.id) AS total FROM orders o;
"""


def _mysql_blog(db: str) -> str:
    return f"""
CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE {db};
CREATE TABLE posts (
  id INT AUTO_INCREMENT PRIMARY KEY,
  slug VARCHAR(100) NOT NULL UNIQUE,
  title VARCHAR(255) NOT NULL,
  body LONGTEXT NULL,
  meta JSON NULL,
  published_at DATETIME NULL,
  updated_at TIMESTAMP NULL DEFAULT NULL
);
CREATE TABLE comments (
  id INT AUTO_INCREMENT PRIMARY KEY,
  post_id INT NOT NULL,
  author VARCHAR(100) NULL,
  body TEXT NOT NULL,
  FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE
);
CREATE TABLE post_log (id INT AUTO_INCREMENT PRIMARY KEY, post_id INT, action VARCHAR(10));
CREATE TRIGGER posts_log AFTER INSERT ON posts FOR EACH ROW
  INSERT INTO post_log (post_id, action) VALUES (NEW.id, 'insert');
INSERT INTO posts (slug, title, body, meta, published_at) VALUES
  ('hello', 'Hello world 👋', 'First post.\\nSecond line.', '{{"tags": ["a", "b"], "ü": 1}}', '2024-01-02 03:04:05'),
  ('draft', 'Entwurf: Größenänderung', NULL, NULL, NULL),
  ('cjk', '中文标题 — العربية — Ελληνικά', REPEAT('lorem ipsum ', 2000), '{{}}', '2024-02-29 23:59:59');
INSERT INTO comments (post_id, author, body) VALUES
  (1, 'Zoë', 'Nice! 🎉'), (1, NULL, 'anonymous'), (3, 'O''Brien', 'quote '' and "double"');
CREATE VIEW published_posts AS SELECT id, slug, title FROM posts WHERE published_at IS NOT NULL;
"""


def _create_mysql(mariadb, user: str) -> list[str]:
    dbs = [f"{user}_shop", f"{user}_blog"]
    _mysql_run(mariadb, "".join(f"DROP DATABASE IF EXISTS {_mysql_ident(d)};\n" for d in dbs))
    _mysql_run(mariadb, _mysql_shop(dbs[0]))
    _mysql_run(mariadb, _mysql_blog(dbs[1]))
    return dbs


def mysql_fingerprint(mariadb, database: str) -> dict[str, object]:
    """{"tables": {table: (rows, CHECKSUM TABLE)}, "views": {view: md5(definition)}, "triggers": [(name, timing,
    event, table, md5(statement))], "routines": [(name, type, md5(body))], "charset": (charset, collation)}."""
    q = _mysql_ident(database)
    s = database.replace("'", "''")
    tables = [
        ln for ln in mariadb.sql(
            f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='{s}' AND TABLE_TYPE='BASE TABLE' "
            "ORDER BY TABLE_NAME"
        ).splitlines() if ln
    ]  # fmt: skip
    out_tables: dict[str, tuple[int, int | None]] = {}
    if tables:
        stmts = "".join(f"SELECT COUNT(*) FROM {q}.{_mysql_ident(t)}; CHECKSUM TABLE {q}.{_mysql_ident(t)};\n" for t in tables)
        lines = _mysql_run(mariadb, stmts).splitlines()
        for i, t in enumerate(tables):
            count, ck = lines[2 * i], lines[2 * i + 1].rsplit("\t", 1)[1]
            out_tables[t] = (int(count), None if ck == "NULL" else int(ck))

    def rows(query: str) -> list[tuple[str, ...]]:
        return [tuple(ln.split("\t")) for ln in mariadb.sql(query).splitlines() if ln]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    views = {
        name: md5(d)
        for name, d in rows(
            "SELECT TABLE_NAME, TO_BASE64(VIEW_DEFINITION) FROM information_schema.VIEWS "
            f"WHERE TABLE_SCHEMA='{s}' ORDER BY TABLE_NAME"
        )
    }
    triggers = rows(
        "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, MD5(ACTION_STATEMENT) "
        f"FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='{s}' ORDER BY TRIGGER_NAME"
    )
    routines = rows(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES "
        f"WHERE ROUTINE_SCHEMA='{s}' ORDER BY ROUTINE_NAME"
    )
    cs = rows(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME='{s}'"
    )
    return {"tables": out_tables, "views": views, "triggers": triggers, "routines": routines, "charset": cs[0] if cs else None}


def mysql_dump(mariadb, *databases: str, extra: Iterable[str] = ()) -> bytes:
    """``mariadb-dump --databases ... --routines --triggers --single-transaction`` (what a backup should do)."""
    cmd = mariadb.argv(mariadb.dump) + ["--single-transaction", "--routines", "--triggers", "--events",
                                        *extra, "--databases", *databases]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"mariadb-dump failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def load_mysql_dump(mariadb, sql_bytes: bytes, database: str | None = None) -> None:
    """Replay a dump into the server with ``mariadb --binary-mode`` (raw BLOB bytes and NULs survive).

    A ``--databases`` dump carries its own CREATE DATABASE/USE; for a single-database dump without them pass
    ``database`` (created if missing)."""
    if database:
        _mysql_run(mariadb, f"CREATE DATABASE IF NOT EXISTS {_mysql_ident(database)}")
    _mysql_run(mariadb, sql_bytes, database)


# ---------------------------------------------------------------------------------------------- PostgreSQL
def _pg_conn_args(postgres) -> list[str]:
    return ["-h", postgres.socket_dir, "-p", str(postgres.port), "-U", postgres.user]


def _psql(postgres, sql: bytes | str, database: str = "postgres", *, on_error_stop: bool = True) -> str:
    cmd = [postgres.tool("psql"), "-X", "-q", "-A", "-t", *_pg_conn_args(postgres), "-d", database, "-f", "-"]
    if on_error_stop:
        cmd[1:1] = ["-v", "ON_ERROR_STOP=1"]
    data = sql.encode() if isinstance(sql, str) else sql
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()[-3000:]}")
    return r.stdout.decode("utf-8", "replace")


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PG_APP = r"""
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE accounts (
  id serial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  display_name text,
  avatar bytea,
  settings jsonb,
  balance numeric(12,2) NOT NULL DEFAULT 0,
  created timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE invoices (
  no bigint PRIMARY KEY DEFAULT nextval('invoice_no'),
  account_id int NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  amount numeric(10,2) NOT NULL,
  note text,
  tags text[]
);
CREATE TABLE audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, msg text NOT NULL);
INSERT INTO accounts (email, display_name, avatar, settings, balance) VALUES
  ('zoe@example.test', 'Zoë Ünïcødé 🐘', '\x00ff00ff5c27220a'::bytea, '{"theme": "dark", "ü": [1, 2]}', 10.50),
  ('bob@example.test', NULL, NULL, NULL, 0),
  ('o''brien@example.test', 'O''Brien "quoted" \ back', decode(repeat('deadbeef', 2048), 'hex'), '{}', -3.25),
  ('cjk@example.test', '日本語 中文 العربية', ''::bytea, '[]', 99999.99);
INSERT INTO invoices (account_id, amount, note, tags)
  SELECT 1 + n % 4, (n * 3.17)::numeric(10,2), CASE WHEN n % 5 = 0 THEN NULL ELSE 'Rechnung Nr. ' || n || ' — ✓' END,
         CASE WHEN n % 2 = 0 THEN ARRAY['a', 'b c'] ELSE NULL END
  FROM generate_series(1, 150) AS n;
SELECT nextval('invoice_no') FROM generate_series(1, 3);
INSERT INTO audit (msg) SELECT 'event ' || n FROM generate_series(1, 25) AS n;
CREATE VIEW account_totals AS
  SELECT a.id, a.email, coalesce(sum(i.amount), 0) AS total FROM accounts a LEFT JOIN invoices i ON i.account_id = a.id
  GROUP BY a.id, a.email;
CREATE FUNCTION touch_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (msg) VALUES ('invoice ' || NEW.no); RETURN NEW; END $$;
CREATE TRIGGER invoices_audit AFTER INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION touch_audit();
"""


def _create_pg(postgres, user: str) -> list[str]:
    db = f"{user}_app"
    _psql(postgres, f"DROP DATABASE IF EXISTS {_pg_ident(db)} WITH (FORCE);")
    _psql(postgres, f"CREATE DATABASE {_pg_ident(db)} ENCODING 'UTF8' TEMPLATE template0;")
    _psql(postgres, _PG_APP, db)
    return [db]


def pg_fingerprint(postgres, database: str) -> dict[str, object]:
    """{"tables": {schema.table: (rows, md5 of rows ordered as text)}, "sequences": {schema.seq: last_value or
    None}, "views": [...], "functions": [...], "triggers": [...]}."""

    def rows(query: str) -> list[list[str]]:
        return [ln.split("\t") for ln in _psql(postgres, query, database).splitlines() if ln]

    tables = rows(
        "SELECT table_schema || E'\\t' || table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;"
    )
    out_tables: dict[str, tuple[int, str]] = {}
    if tables:
        q = "\n".join(
            f"SELECT count(*) || E'\\t' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\"), '')) "
            f"FROM {_pg_ident(sch)}.{_pg_ident(tb)} AS t;"
            for sch, tb in tables
        )
        for (sch, tb), (count, md5) in zip(tables, rows(q)):
            out_tables[f"{sch}.{tb}"] = (int(count), md5)
    seqs = {
        name: (None if val == "" else int(val))
        for name, val in rows(
            "SELECT schemaname || '.' || sequencename || E'\\t' || coalesce(last_value::text, '') FROM pg_sequences ORDER BY 1;"
        )
    }
    views = [
        r[0]
        for r in rows(
            "SELECT table_schema || '.' || table_name || ':' || md5(view_definition) FROM information_schema.views "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;"
        )
    ]
    funcs = [
        r[0]
        for r in rows(
            "SELECT n.nspname || '.' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;"
        )
    ]
    trigs = [
        r[0]
        for r in rows(
            "SELECT c.relname || '.' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal ORDER BY 1;"
        )
    ]
    return {"tables": out_tables, "sequences": seqs, "views": views, "functions": funcs, "triggers": trigs}


def pg_dump(postgres, database: str, *extra: str) -> bytes:
    """Plain-format ``pg_dump`` of ``database`` (add "--create" / "-Fc" etc. via ``extra``)."""
    cmd = [postgres.tool("pg_dump"), *_pg_conn_args(postgres), *extra, database]
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def load_pg_dump(postgres, sql_bytes: bytes, database: str | None = None) -> None:
    """Replay a pg_dump. Plain SQL goes through psql with ON_ERROR_STOP; custom format ("PGDMP") through pg_restore.

    database=None: the dump must create its database itself (``pg_dump --create``); it is run from "postgres".
    database given: created (from template0) if missing, and the dump is replayed into it."""
    if database:
        exists = _psql(postgres, f"SELECT 1 FROM pg_database WHERE datname = '{database.replace(chr(39), chr(39) * 2)}';")
        if not exists.strip():
            _psql(postgres, f"CREATE DATABASE {_pg_ident(database)} ENCODING 'UTF8' TEMPLATE template0;")
    if sql_bytes[:5] == b"PGDMP":
        cmd = [postgres.tool("pg_restore"), *_pg_conn_args(postgres), "--exit-on-error"]
        cmd += ["-d", database] if database else ["--create", "-d", "postgres"]
        r = subprocess.run(cmd, input=sql_bytes, capture_output=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"pg_restore failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()[-3000:]}")
        return
    _psql(postgres, sql_bytes, database or "postgres")


def drop_account_databases(acc: AccountData, mariadb=None, postgres=None) -> None:
    if mariadb is not None and acc.mysql_databases:
        _mysql_run(mariadb, "".join(f"DROP DATABASE IF EXISTS {_mysql_ident(d)};\n" for d in acc.mysql_databases))
    if postgres is not None:
        for d in acc.pg_databases:
            _psql(postgres, f"DROP DATABASE IF EXISTS {_pg_ident(d)} WITH (FORCE);")


# ----------------------------------------------------------------------------------------------- manifests
def tree_manifest(root: Path, ignore: Iterable[str] = ()) -> dict[str, tuple]:
    """Relative path ("." = root) -> (type, mode, uid, gid, size, sha256 | link target | None, mtime).

    type is "dir", "file", "symlink" or "other"; mode is S_IMODE (incl. setuid/sticky); size is 0 for dirs (their
    st_size depends on the filesystem); symlinks are not followed. ``ignore``: fnmatch patterns on the relative
    path; an ignored dir is skipped with its contents and, as its parent's mtime then depends on it, parents of
    ignored entries keep their mtime as None."""
    root = Path(root)
    pats = tuple(ignore)
    out: dict[str, tuple] = {}
    dirty: set[str] = set()

    def skip(rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, p) for p in pats)

    def entry(path: str, rel: str) -> None:
        st = os.lstat(path)
        m = st.st_mode
        if stat.S_ISLNK(m):
            kind, size, extra = "symlink", st.st_size, os.readlink(path)
        elif stat.S_ISDIR(m):
            kind, size, extra = "dir", 0, None
        elif stat.S_ISREG(m):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            kind, size, extra = "file", st.st_size, h.hexdigest()
        else:
            kind, size, extra = "other", 0, f"{stat.S_IFMT(m):o}:{st.st_rdev}"
        out[rel] = (kind, stat.S_IMODE(m), st.st_uid, st.st_gid, size, extra, int(st.st_mtime))

    entry(str(root), ".")
    for dirpath, dirs, files in os.walk(root):
        reldir = os.path.relpath(dirpath, root)
        keep = []
        for n in sorted(dirs) + sorted(files):
            rel = n if reldir == "." else f"{reldir}/{n}"
            if skip(rel):
                dirty.add(reldir)
                continue
            entry(os.path.join(dirpath, n), rel)
            if n in dirs and not os.path.islink(os.path.join(dirpath, n)):
                keep.append(n)
        dirs[:] = keep
    for d in dirty:
        if d in out:
            out[d] = out[d][:6] + (None,)
    return out


def hardlink_groups(root: Path) -> list[list[str]]:
    """Sorted groups (>= 2 paths) of regular files below root that share an inode."""
    by_inode: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                by_inode.setdefault((st.st_dev, st.st_ino), []).append(os.path.relpath(p, root))
    return sorted(sorted(g) for g in by_inode.values() if len(g) > 1)


# ----------------------------------------------------------------------------------------------- the builder
def _make_traversable(path: Path) -> None:
    for d in [path, *path.parents]:
        try:
            mode = d.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)


def build_account(base: Path, user: str, mariadb=None, postgres=None) -> AccountData:
    """Build (or rebuild: existing pieces under ``base`` and the databases are replaced) a hosting account:
    base/home/<user>, base/etc/bind/db.<domain>, base/var/spool/cron/crontabs/<user>; the Linux user is created
    if missing. Ancestors of the home get o+x so the user (dovecot) can reach it."""
    if not user or not all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in user):
        raise ValueError(f"user name must be [a-z0-9_]: {user!r}")
    base = Path(base).absolute()
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home" / user
    zone_dir = base / "etc" / "bind"
    cron_dir = base / "var" / "spool" / "cron" / "crontabs"
    domain = f"example-{user.replace('_', '-')}.test"
    uid, gid = ensure_account_user(user, home)

    if home.exists() or home.is_symlink():
        shutil.rmtree(home)
    (base / "home").mkdir(exist_ok=True)
    (base / "home").chmod(0o755)
    _build_home(home, user, domain)
    mail_dir = home / "Maildir"
    _mkdir(mail_dir, 0o700)
    imap_expected, subs = _build_maildir(mail_dir, user, domain)
    _fix_owners(home, uid, gid)
    _fix_mtimes(home)
    _make_traversable(home)

    zone_dir.mkdir(parents=True, exist_ok=True)
    zone = _write(zone_dir / f"db.{domain}", _zone(domain), 0o644)
    try:
        os.chown(zone, 0, grp.getgrnam("bind").gr_gid)
    except KeyError:
        pass
    os.utime(zone, (BASE_MTIME, BASE_MTIME))

    cron_dir.mkdir(parents=True, exist_ok=True)
    cron_dir.chmod(0o1730)  # as on Debian (root:crontab 1730)
    try:
        cron_gid = grp.getgrnam("crontab").gr_gid
        os.chown(cron_dir, 0, cron_gid)
    except KeyError:
        cron_gid = gid
    crontab = _write(cron_dir / user, _crontab(user, home), 0o600)
    os.chown(crontab, uid, cron_gid)
    os.utime(crontab, (BASE_MTIME + 60, BASE_MTIME + 60))

    mysql_dbs = _create_mysql(mariadb, user) if mariadb is not None else []
    pg_dbs = _create_pg(postgres, user) if postgres is not None else []
    return AccountData(
        user=user, uid=uid, gid=gid, home=home, mail_dir=mail_dir, zone_files=[zone], crontab=crontab,
        mysql_databases=mysql_dbs, pg_databases=pg_dbs, base=base, domain=domain, zone_dir=zone_dir,
        crontab_dir=cron_dir, imap_expected=imap_expected, subscriptions=subs,
    )  # fmt: skip


@pytest.fixture
def hosting_account(mariadb_server, postgres_server) -> Iterator[AccountData]:
    """A fresh account ``jbt<5 hex>`` with home, Maildir, zone, crontab and 2 MariaDB + 1 PostgreSQL databases,
    built under a 0755 mkdtemp dir in /tmp. Teardown: drop databases, userdel, remove the tree. Stop any dovecot
    serving its Maildir (imap.stop()) before the test ends."""
    if os.geteuid() != 0:
        pytest.skip("hosting_account: needs root (useradd, chown)")
    base = Path(tempfile.mkdtemp(prefix="jabali-acct-", dir="/tmp"))
    base.chmod(0o755)
    user = ""
    acc = None
    try:
        for _ in range(20):
            user = f"jbt{secrets.token_hex(3)[:5]}"
            try:
                pwd.getpwnam(user)
            except KeyError:
                break
        acc = build_account(base, user, mariadb=mariadb_server, postgres=postgres_server)
        yield acc
    finally:
        errors = []
        try:
            drop_account_databases(
                acc or AccountData(user, 0, 0, base, base, [], base, [f"{user}_shop", f"{user}_blog"], [f"{user}_app"]),
                mariadb_server,
                postgres_server,
            )
        except Exception as e:  # pragma: no cover - teardown best effort
            errors.append(e)
        try:
            if user:
                remove_account_user(user)
        except Exception as e:  # pragma: no cover
            errors.append(e)
        shutil.rmtree(base, ignore_errors=True)
        if errors:
            raise errors[0]
