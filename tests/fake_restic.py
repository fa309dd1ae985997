#!/usr/bin/env python3
"""A FAKE restic for tests: a speed and fault-injection stub, never a backup tool.

It implements just enough of restic 0.14's command line for jabali (and only local repositories) to run
hundreds of simulated backups quickly and to inject failures; anything else fails loudly ("Fatal: fake
restic ..."). Tests use it through `JABALI_RESTIC` (see `install`); real-restic behaviour is tested
against the real binary elsewhere.

restic gets a clean environment from jabali, so everything lives inside the repository directory given by
`RESTIC_REPOSITORY` (a local path):

    <repo>/config                   present once initialised (what `cat config` stats)
    <repo>/fake-restic.state        repository state (marshal): keys, snapshots, forget/prune history
    <repo>/calls.jsonl              one JSON line per invocation: the argv without the binary (all but
                                    `version`, which runs without a repository)
    <repo>/fake-restic-faults.json  optional, written by tests: a list of faults, each
        {"command": "backup", "match": "component=files", "sleep": 1.5, "exit": 1,
         "stderr": "Fatal: ...", "times": 1}
      `match` (a substring of the space-joined argv) and `times` (how many calls it hits) are optional;
      `sleep` alone delays the command and then lets it run normally; `"wait_for": PATH` holds it until
      PATH exists (a test decides when a "busy" restic may finish).

Supported: version, init, cat config, list keys|snapshots|locks, key add/list/remove, backup (paths or
--stdin), forget ID..., prune, snapshots, unlock; the global options jabali passes (--cache-dir,
--password-file, --cacert, -o, --insecure-tls, --no-lock, --no-cache, --json). The password file must be
readable (jabali hands it over as /dev/fd/N) and must match a key of the repository.

It starts with `python -S` and imports neither json nor hashlib (a year of daily runs is thousands of
calls): output JSON is written by a small encoder below.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

VERSION = "restic 0.14.0 compiled with go1.19.8 on linux/amd64"
STATE = "fake-restic.state"
CALLS = "calls.jsonl"
FAULTS = "fake-restic-faults.json"
LOCK = "fake-restic.lock"

_VALUE_GLOBALS = {
    "--cache-dir", "--password-file", "--cacert", "-o", "--option", "-r", "--repo", "--repository-file",
    "--password-command", "--key-hint", "--limit-upload", "--limit-download", "--tls-client-cert",
}
_FLAG_GLOBALS = {"--no-cache", "--no-lock", "--insecure-tls", "--json", "-q", "--quiet", "-v", "--verbose",
                 "--cleanup-cache"}


# -- helpers for tests (importing this module runs nothing) ---------------------------------------------------
def install(directory) -> str:
    """Write an executable `restic` into `directory` that runs this module with this Python (-S, and
    importing it rather than running it as a script, so its compiled bytecode is reused); return its path."""
    from pathlib import Path

    target = Path(directory) / "restic"
    here = os.path.dirname(os.path.abspath(__file__))
    target.write_text(
        f"#!{sys.executable} -S\n"
        "import sys\n"
        f"sys.path.insert(0, {here!r})\n"
        "import fake_restic\n"
        "sys.exit(fake_restic.main(sys.argv[1:]))\n"
    )
    target.chmod(0o755)
    return str(target)


def load_state(repo) -> dict:
    with open(os.path.join(str(repo), STATE), "rb") as fh:
        return marshal.load(fh)


def calls(repo) -> list:
    import json

    path = os.path.join(str(repo), CALLS)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def command_of(argv: list) -> str:
    """The restic command of a logged argv (global options stripped)."""
    return _parse_globals(argv)[1][0]


class CallLog:
    """Reads a repository's calls.jsonl incrementally: `new()` returns the calls since the last `new()`."""

    def __init__(self, repo) -> None:
        self.path = os.path.join(str(repo), CALLS)
        self.offset = 0

    def new(self) -> list:
        import json

        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def set_faults(repo, faults: list) -> None:
    import json

    os.makedirs(str(repo), exist_ok=True)
    path = os.path.join(str(repo), FAULTS)
    if faults:
        with open(path, "w") as fh:
            json.dump(faults, fh)
    elif os.path.exists(path):
        os.unlink(path)


# -- a small JSON encoder (json imports re: too slow to start) ------------------------------------------------
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 10: "\\n", 13: "\\r", 9: "\\t"})


def dumps(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(dumps(str(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    raise TypeError(f"cannot encode {type(value).__name__}")


# -- plumbing -------------------------------------------------------------------------------------------------
class Exit(Exception):
    def __init__(self, code: int, stderr: str = "") -> None:
        self.code = code
        self.stderr = stderr


def fatal(message: str, code: int = 1) -> Exit:
    return Exit(code, message if message.startswith("Fatal:") else "Fatal: " + message)


def _sha(text: str) -> str:
    try:
        import _sha256

        return _sha256.sha256(text.encode()).hexdigest()
    except ImportError:  # pragma: no cover
        import hashlib

        return hashlib.sha256(text.encode()).hexdigest()


def _new_id() -> str:
    return os.urandom(32).hex()


def _now_restic() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def _parse_globals(argv: list) -> tuple[dict, list]:
    opts: dict = {"o": []}
    rest = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if arg.startswith("-") and name in _VALUE_GLOBALS:
            if eq:
                value = inline
            else:
                if i + 1 >= len(argv):
                    raise Exit(1, f"flag needs an argument: {name}")
                value = argv[i + 1]
                i += 1
            if name in ("-o", "--option"):
                opts["o"].append(value)
            else:
                opts[name.lstrip("-")] = value
        elif arg in _FLAG_GLOBALS:
            opts[arg.lstrip("-")] = True
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def _take(args: list, with_value: set, flags: set) -> tuple[dict, list]:
    """Split a command's args into options (repeatable: lists) and positional arguments."""
    opts: dict = {}
    pos = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if arg.startswith("-") and arg != "-":
            if name in with_value:
                if not eq:
                    if i + 1 >= len(args):
                        raise Exit(1, f"flag needs an argument: {name}")
                    inline = args[i + 1]
                    i += 1
                opts.setdefault(name, []).append(inline)
            elif arg in flags:
                opts[arg] = True
            else:
                raise Exit(1, f"unknown flag: {arg}")
        else:
            pos.append(arg)
        i += 1
    return opts, pos


def _log(repo: str, argv: list) -> None:
    try:
        os.makedirs(repo, exist_ok=True)
        fd = os.open(os.path.join(repo, CALLS), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (dumps(argv) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # e.g. the "repository" path is a plain file: the command itself reports that


def _faults(repo: str, argv: list, command: str) -> None:
    path = os.path.join(repo, FAULTS)
    if not os.path.exists(path):
        return
    import fcntl
    import json

    with open(path, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        faults = json.load(fh)
        joined = " ".join(argv)
        hit = None
        for fault in faults:
            if fault.get("command", command) != command or fault.get("match", "") not in joined:
                continue
            if fault.get("times") is not None:
                if fault["times"] <= 0:
                    continue
                fault["times"] -= 1
                fh.seek(0)
                fh.truncate()
                json.dump(faults, fh)
            hit = fault
            break
    if hit is None:
        return
    if hit.get("sleep"):
        time.sleep(float(hit["sleep"]))
    if hit.get("wait_for"):
        deadline = time.monotonic() + float(hit.get("wait_timeout", 120))
        while not os.path.exists(hit["wait_for"]):
            if time.monotonic() > deadline:
                raise Exit(1, f"Fatal: fake restic: {hit['wait_for']} never appeared")
            time.sleep(0.02)
    if hit.get("exit") is not None:
        raise Exit(int(hit["exit"]), hit.get("stderr", ""))


class Repo:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd: int | None = None

    @property
    def initialised(self) -> bool:
        return os.path.exists(os.path.join(self.path, "config"))

    def __enter__(self) -> "Repo":
        import fcntl

        self._lock_fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = None

    def load(self) -> dict:
        with open(os.path.join(self.path, STATE), "rb") as fh:
            return marshal.load(fh)

    def save(self, state: dict) -> None:
        tmp = os.path.join(self.path, STATE + ".tmp")
        with open(tmp, "wb") as fh:
            marshal.dump(state, fh)
        os.replace(tmp, os.path.join(self.path, STATE))


def _missing_repo(path: str) -> Exit:
    return Exit(1, f"Fatal: unable to open config file: stat {path}/config: no such file or directory\n"
                   f"Is there a repository at the following location?\n{path}")


def _open(repo: Repo, password: str) -> dict:
    """Load the state of an initialised repository whose key matches the password (lock held)."""
    if not repo.initialised:
        raise _missing_repo(repo.path)
    state = repo.load()
    digest = _sha(password)
    for key in state["keys"]:
        if key["pw"] == digest:
            state["_current"] = key["id"]
            return state
    raise Exit(1, "Fatal: wrong password or no key found")


def _save(repo: Repo, state: dict) -> None:
    state.pop("_current", None)
    repo.save(state)


def _key(password: str, user: str, host: str) -> dict:
    return {"id": _new_id(), "user": user, "host": host, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "pw": _sha(password)}


# -- commands -------------------------------------------------------------------------------------------------
def cmd_init(repo: Repo, password: str, args: list, g: dict) -> str:
    _take(args, set(), set())
    if os.path.exists(repo.path) and not os.path.isdir(repo.path):
        raise fatal(f"create repository at {repo.path} failed: mkdir {repo.path}: not a directory")
    os.makedirs(repo.path, exist_ok=True)
    with repo:
        if repo.initialised:
            raise fatal(f"create repository at {repo.path} failed: config file already exists")
        state = {"id": _new_id(), "poly": os.urandom(7).hex(), "keys": [_key(password, "root", "fake")],
                 "snapshots": [], "forgotten": [], "forgets": 0, "prunes": 0}
        _save(repo, state)
        with open(os.path.join(repo.path, "config"), "w") as fh:
            fh.write(dumps({"version": 2, "id": state["id"], "chunker_polynomial": state["poly"]}))
    return (f"created restic repository {state['id'][:10]} at {repo.path}\n\nPlease note that knowledge of your "
            "password is required to access\nthe repository. Losing your password means that your data is\n"
            "irrecoverably lost.\n")


def cmd_cat(repo: Repo, password: str, args: list, g: dict) -> str:
    _, pos = _take(args, set(), set())
    if pos != ["config"]:
        raise fatal(f"fake restic implements only `cat config`, not `cat {' '.join(pos)}`")
    with _locked(repo):
        state = _open(repo, password)
    return ('{\n  "version": 2,\n  "id": "' + state["id"] + '",\n  "chunker_polynomial": "' + state["poly"]
            + '"\n}\n')


class _locked:
    """Lock a repository that may not exist yet (then there is nothing to lock)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.held = False

    def __enter__(self) -> Repo:
        if os.path.isdir(self.repo.path):
            self.repo.__enter__()
            self.held = True
        return self.repo

    def __exit__(self, *exc) -> None:
        if self.held:
            self.repo.__exit__()


def cmd_key(repo: Repo, password: str, args: list, g: dict) -> str:
    if not args:
        raise Exit(1, "Fatal: wrong number of arguments")
    sub, rest = args[0], args[1:]
    opts, pos = _take(rest, {"--host", "--user", "--new-password-file"}, set())
    with _locked(repo):
        state = _open(repo, password)
        if sub == "list":
            keys = [{"current": k["id"] == state["_current"], "id": k["id"][:8], "userName": k["user"],
                     "hostName": k["host"], "created": k["created"]} for k in state["keys"]]
            if g.get("json"):
                return dumps(keys) + "\n"
            return "".join(f"{'*' if k['current'] else ' '}{k['id']}  {k['userName']}  {k['hostName']}\n" for k in keys)
        if sub == "add":
            files = opts.get("--new-password-file")
            if not files:
                raise fatal("fake restic needs --new-password-file for `key add`")
            try:
                with open(files[-1]) as fh:
                    new = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise fatal(f"unable to read new password file: {exc}")
            if not new:
                raise fatal("an empty password is not allowed")
            key = _key(new, (opts.get("--user") or ["root"])[-1], (opts.get("--host") or ["fake"])[-1])
            state["keys"].append(key)
            _save(repo, state)
            return f"saved new key as <Key of {key['user']}@{key['host']}, created on {key['created']}>\n"
        if sub == "remove":
            if len(pos) != 1:
                raise Exit(1, "Fatal: key remove needs one key ID")
            found = [k for k in state["keys"] if k["id"].startswith(pos[0])]
            if not found:
                raise Exit(1, f'no matching ID found for prefix "{pos[0]}"')
            if len(found) > 1:
                raise Exit(1, f'multiple IDs with prefix "{pos[0]}" found')
            if found[0]["id"] == state["_current"]:
                raise fatal("refusing to remove key currently used to access repository")
            state["keys"] = [k for k in state["keys"] if k["id"] != found[0]["id"]]
            _save(repo, state)
            return f"removed key {found[0]['id']}\n"
    raise fatal(f"fake restic implements only key add/list/remove, not `key {sub}`")


def _count(paths: list) -> tuple[int, int, list]:
    files = size = 0
    errors = []

    def onerror(exc: OSError) -> None:
        errors.append(exc)

    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            for root, _dirs, names in os.walk(path, onerror=onerror):
                for name in names:
                    try:
                        st = os.lstat(os.path.join(root, name))
                    except OSError as exc:
                        errors.append(exc)
                        continue
                    files += 1
                    size += st.st_size
        else:
            files += 1
            size += os.lstat(path).st_size
    return files, size, errors


def cmd_backup(repo: Repo, password: str, args: list, g: dict) -> str:
    opts, pos = _take(
        args,
        {"--host", "--time", "--tag", "--stdin-filename", "--exclude", "--iexclude", "--exclude-file",
         "--files-from", "--parent"},
        {"--stdin", "--one-file-system", "--exclude-caches", "--force"},
    )
    with _locked(repo):
        _open(repo, password)  # fail early, like restic, before reading anything
    stderr = []
    errors = []
    if opts.get("--stdin"):
        if pos:
            raise fatal("--stdin was specified and files/dirs were listed as arguments")
        name = (opts.get("--stdin-filename") or ["stdin"])[-1]
        size = 0
        read = sys.stdin.buffer.read
        while True:
            chunk = read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
        files, paths = 1, ["/" + name]
    else:
        if not pos:
            raise Exit(1, "Fatal: nothing to backup, please specify target files/dirs")
        present = []
        for path in pos:
            if os.path.lexists(path):
                present.append(os.path.abspath(path))
            else:
                stderr.append(f"{path} does not exist, skipping")
        if not present:
            raise Exit(1, "\n".join(stderr + ["Fatal: all target directories/files do not exist"]))
        files, size, errors = _count(present)
        paths = sorted(present)
    tags = [t for value in opts.get("--tag", []) for t in value.split(",") if t]
    if opts.get("--time"):
        when = opts["--time"][-1]
        if len(when) != 19 or when[10] != " ":
            raise fatal(f'unable to parse time: "{when}"')
        when = when.replace(" ", "T") + "Z"  # jabali runs restic with TZ=UTC
    else:
        when = _now_restic()
    host = (opts.get("--host") or ["fake-host"])[-1]
    snap = {"time": when, "tree": _new_id(), "paths": paths, "hostname": host, "username": "root",
            "uid": 0, "gid": 0, "tags": tags, "id": _new_id()}
    with repo:
        state = _open(repo, password)
        state["snapshots"].append(snap)
        _save(repo, state)
    out = [dumps({"message_type": "status", "percent_done": 1, "total_files": files, "files_done": files,
                  "total_bytes": size, "bytes_done": size})]
    for exc in errors:
        out.append(dumps({"message_type": "error", "error": {"Op": "open", "Path": exc.filename, "Err": 13},
                          "during": "archival", "item": exc.filename}))
    out.append(dumps({
        "message_type": "summary", "files_new": files, "files_changed": 0, "files_unmodified": 0,
        "dirs_new": 0, "dirs_changed": 0, "dirs_unmodified": 0, "data_blobs": files, "tree_blobs": 1,
        "data_added": size, "total_files_processed": files, "total_bytes_processed": size,
        "total_duration": 0.001, "snapshot_id": snap["id"],
    }))
    if stderr:
        sys.stderr.write("\n".join(stderr) + "\n")
    if errors:  # restic 0.14: the snapshot is saved, the exit status says some items were unreadable
        sys.stdout.write("\n".join(out) + "\n")
        raise Exit(3, "Warning: at least one source file could not be read")
    return "\n".join(out) + "\n"


def _match(snaps: list, prefix: str) -> list:
    return [s for s in snaps if s["id"].startswith(prefix)]


def cmd_forget(repo: Repo, password: str, args: list, g: dict) -> str:
    opts, pos = _take(args, set(), {"--prune", "--dry-run", "-n"})
    if any(a.startswith("--keep") for a in args):
        raise fatal("fake restic does not implement forget policies (jabali forgets by snapshot ID)")
    if not pos:
        raise fatal("nothing to do: no snapshot IDs given")
    notes = []
    with _locked(repo):
        state = _open(repo, password)
        state["forgets"] += 1
        removed = []
        for prefix in pos:
            found = _match(state["snapshots"], prefix)
            if not found:
                notes.append(f'Ignoring "{prefix}": no matching ID found for prefix "{prefix}"')
            elif len(found) > 1:
                notes.append(f'Ignoring "{prefix}": multiple IDs with prefix "{prefix}" found')
            else:
                removed.append(found[0])
                state["snapshots"] = [s for s in state["snapshots"] if s["id"] != found[0]["id"]]
        dry = opts.get("--dry-run") or opts.get("-n")
        if not dry:
            for snap in removed:
                state["forgotten"].append({"forget": state["forgets"], "id": snap["id"], "tags": snap["tags"]})
            if opts.get("--prune"):
                state["prunes"] += 1
            _save(repo, state)
    if notes:
        sys.stderr.write("\n".join(notes) + "\n")
    return "".join(f"removed snapshot {s['id'][:8]}\n" for s in removed)


def cmd_prune(repo: Repo, password: str, args: list, g: dict) -> str:
    _take(args, {"--max-unused", "--max-repack-size"}, {"--dry-run", "-n", "--repack-cacheable-only"})
    with _locked(repo):
        state = _open(repo, password)
        state["prunes"] += 1
        _save(repo, state)
    return "loading indexes...\nfinding data that is still in use for %d snapshots\ndone\n" % len(state["snapshots"])


def cmd_snapshots(repo: Repo, password: str, args: list, g: dict) -> str:
    opts, pos = _take(args, {"--tag", "--host", "-H", "--path"}, {"--latest", "--compact", "-c"})
    with _locked(repo):
        state = _open(repo, password)
    tag_lists = [[t for t in v.split(",") if t] for v in opts.get("--tag", [])]
    hosts = opts.get("--host", []) + opts.get("-H", [])
    want_paths = set(opts.get("--path", []))
    out = []
    for snap in state["snapshots"]:
        if tag_lists and not any(all(t in snap["tags"] for t in tl) for tl in tag_lists):
            continue
        if hosts and snap["hostname"] not in hosts:
            continue
        if want_paths and not want_paths <= set(snap["paths"]):
            continue
        if pos and not any(snap["id"].startswith(p) for p in pos):
            continue
        out.append(snap)
    out.sort(key=lambda s: (s["time"][:19], s["time"][19:].rstrip("Z")))
    listing = [{"time": s["time"], "tree": s["tree"], "paths": s["paths"], "hostname": s["hostname"],
                "username": s["username"], "uid": s["uid"], "gid": s["gid"], "tags": s["tags"], "id": s["id"],
                "short_id": s["id"][:8]} for s in out]
    if g.get("json"):
        return dumps(listing) + "\n"
    lines = [f"{s['short_id']}  {s['time']}  {s['hostname']}  {','.join(s['tags'])}  {' '.join(s['paths'])}"
             for s in listing]
    return "\n".join(lines + [f"{len(listing)} snapshots"]) + "\n"


def cmd_list(repo: Repo, password: str, args: list, g: dict) -> str:
    _, pos = _take(args, set(), set())
    if len(pos) != 1:
        raise Exit(1, "Fatal: type not specified")
    with _locked(repo):
        state = _open(repo, password)
    if pos[0] == "keys":
        return "".join(k["id"] + "\n" for k in state["keys"])
    if pos[0] == "snapshots":
        return "".join(s["id"] + "\n" for s in state["snapshots"])
    if pos[0] in ("locks", "index", "packs", "blobs"):
        return ""
    raise Exit(1, f'Fatal: invalid type "{pos[0]}"')


def cmd_unlock(repo: Repo, password: str, args: list, g: dict) -> str:
    _take(args, set(), {"--remove-all"})
    with _locked(repo):
        _open(repo, password)
    return "successfully removed locks\n"


COMMANDS = {
    "init": cmd_init, "cat": cmd_cat, "key": cmd_key, "backup": cmd_backup, "forget": cmd_forget,
    "prune": cmd_prune, "snapshots": cmd_snapshots, "list": cmd_list, "unlock": cmd_unlock,
}


def _password(g: dict) -> str:
    path = g.get("password-file")
    if path is None:
        if os.environ.get("RESTIC_PASSWORD"):
            return os.environ["RESTIC_PASSWORD"]
        raise Exit(1, "Fatal: Resolving password failed: no password given (fake restic reads only --password-file"
                      " or RESTIC_PASSWORD)")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise Exit(1, f"Fatal: Resolving password failed: Fatal: {path} does not exist: {exc.strerror}")
    password = data.decode(errors="replace").rstrip("\r\n")
    if not password:
        raise Exit(1, "Fatal: an empty password is not allowed by default. Pass the flag `--insecure-no-password`"
                      " to restic to disable this check")
    return password


def main(argv: list) -> int:
    try:
        g, rest = _parse_globals(argv)
        if not rest:
            raise Exit(1, "Fatal: fake restic: no command given")
        command, args = rest[0], rest[1:]
        if command == "version":
            sys.stdout.write(VERSION + "\n")
            return 0
        location = g.get("repo") or os.environ.get("RESTIC_REPOSITORY", "")
        if not location:
            raise Exit(1, "Fatal: Please specify repository location (-r or --repository-file)")
        if location.startswith("local:"):
            location = location[len("local:"):]
        head = location.split(":", 1)[0]
        if ":" in location and "/" not in head:
            raise fatal(f"fake restic implements only local repositories, not {head}:")
        location = location.rstrip("/") or "/"
        _log(location, argv)
        _faults(location, argv, command)
        password = _password(g)
        handler = COMMANDS.get(command)
        if handler is None:
            raise Exit(1, f'Fatal: fake restic does not implement "{command}"')
        sys.stdout.write(handler(Repo(location), password, args, g))
        sys.stdout.flush()
        return 0
    except Exit as exc:
        sys.stdout.flush()
        if exc.stderr:
            sys.stderr.write(exc.stderr.rstrip("\n") + "\n")
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
