"""The only module that runs restic: argv building, secrets over a file descriptor, version detection,
JSON parsing and error classification (restic 0.14's stderr texts and >= 0.17's exit codes).

Given a `Repository` (location, password, backend environment, typed options) and restic arguments,
`run` returns a `Result` or raises `ResticError` carrying a `Failure` class an operator can act on.
Secrets never reach argv: the password goes through `--password-file /dev/fd/N` (a pipe), backend
credentials and the repository location (which may hold REST basic-auth) through the environment, and a
REST bearer token only to jabali's own loopback proxy.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import IO, Any

from . import paths
from .errors import OperationFailed

DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Bearer:
    """A REST server behind a bearer token: restic talks to a loopback proxy that adds the header."""

    upstream: str
    token: str
    cacert: str | None = None


@dataclass(frozen=True)
class Repository:
    location: str
    password: str
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    bearer: Bearer | None = None
    # Extra strings to scrub from anything we print (backend keys, tokens, URL passwords).
    secrets: tuple[str, ...] = ()
    # SFTP: the file ssh writes its errors to (`ssh -E`); read when restic fails, see `_ssh_errors`.
    ssh_log: str | None = None

    def redact(self, text: str) -> str:
        tokens = (self.bearer.token,) if self.bearer else ()
        for secret in (self.password, *self.secrets, *tokens):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


class Failure(str, Enum):
    NO_REPO = "no repository at this location"
    WRONG_PASSWORD = "wrong repository password"
    AUTH = "authentication refused by the destination"
    UNREACHABLE = "destination unreachable"
    PERMISSION = "permission denied"
    BUCKET_MISSING = "bucket or container does not exist"
    TLS = "TLS certificate not trusted (give the destination --cacert FILE, or set JABALI_RESTIC_INSECURE_TLS=1)"
    HOST_KEY = "SSH host key verification failed (the server's key changed or is unknown)"
    LOCKED = "repository is locked by another process"
    EXISTS = "a repository already exists at this location"
    TIMEOUT = "timed out"
    NO_SNAPSHOT = "no matching snapshot"
    INTERRUPTED = "interrupted"
    UNKNOWN = "restic failed"


class ResticError(OperationFailed):
    def __init__(self, failure: Failure, detail: str, returncode: int | None = None) -> None:
        self.failure = failure
        self.detail = detail
        self.returncode = returncode
        super().__init__(f"{failure.value}: {detail}" if detail else failure.value)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    def json(self) -> Any:
        """Parse stdout as JSON (restic 0.14 may print plain text after the first JSON line)."""
        text = self.stdout.decode(errors="replace").strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return json.loads(text.splitlines()[0])

    def json_lines(self) -> list[Any]:
        out = []
        for line in self.stdout.decode(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def has_exit_codes(self) -> bool:
        """restic >= 0.17 exits 10 (no repository), 11 (lock failed), 12 (wrong password)."""
        return (self.major, self.minor) >= (0, 17)


def binary() -> str:
    return os.environ.get("JABALI_RESTIC", "restic")


@functools.lru_cache(maxsize=None)
def version() -> Version:
    """Detect the installed restic once per process."""
    try:
        out = subprocess.run(
            [binary(), "version"], capture_output=True, text=True, timeout=30, env=_base_env()
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationFailed(f"restic is not installed or not runnable ({exc.__class__.__name__})") from None
    match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise OperationFailed(f"cannot parse `restic version` output: {out.strip()[:80]!r}")
    found = Version(*(int(x) for x in match.groups()))
    if found < Version(0, 14, 0):
        raise OperationFailed(f"restic {found} is too old: jabali needs 0.14 or newer")
    return found


def insecure_tls() -> bool:
    return os.environ.get("JABALI_RESTIC_INSECURE_TLS", "") in ("1", "true", "yes")


def _base_env() -> dict[str, str]:
    # A clean environment: an operator's RESTIC_* or AWS_* variables must never leak into a destination.
    # TZ=UTC: `--time` and snapshot times are read and printed in UTC, whatever the host's zone.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    for name in ("HOME", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def classify(returncode: int, stderr: str) -> Failure:
    """Given restic's exit status and stderr, return the failure class."""
    if returncode == 10:
        return Failure.NO_REPO
    if returncode == 11:
        return Failure.LOCKED
    if returncode == 12:
        return Failure.WRONG_PASSWORD
    if returncode == 130:
        return Failure.INTERRUPTED
    text = stderr.lower()
    checks: list[tuple[Failure, tuple[str, ...]]] = [
        (Failure.WRONG_PASSWORD, ("wrong password or no key found",)),
        (
            Failure.TLS,
            ("x509:", "certificate signed by unknown authority", "tls: ", "certificate is not valid", "certificate not trusted"),
        ),
        (Failure.HOST_KEY, ("host key verification failed", "remote host identification has changed")),
        (
            Failure.EXISTS,
            (
                "config file already exists",
                "config already exists",  # b2 (and other cloud backends' Create)
                "repository master key and config already initialized",
            ),
        ),
        (
            Failure.AUTH,
            (
                "permission denied (publickey",
                "permission denied (password",
                "401 unauthorized",
                "(401)",
                "403 forbidden",
                "(403)",
                "access denied",
                "invalidaccesskeyid",
                "signaturedoesnotmatch",
                "authenticationfailed",
                "authorizationfailure",
                "invalid_grant",
                "unauthorized",
            ),
        ),
        (
            Failure.UNREACHABLE,
            (
                "connection refused",
                "upstream unreachable",
                "no such host",
                "i/o timeout",
                "network is unreachable",
                "no route to host",
                "could not resolve hostname",
                "connection timed out",
                "connection reset",
                "502 bad gateway",
                "(502)",
                "server misbehaving",
            ),
        ),
        (Failure.LOCKED, ("repository is already locked", "failed to lock")),
        # restic 0.14 on a repository it cannot write: retries the lock for ~44 s, then this.
        (Failure.PERMISSION, ("permission denied", "read-only file system", "operation not permitted",
                              "unable to create lock")),
        (
            # "unable to open config file" also precedes auth, TLS and network errors: those matched above.
            Failure.NO_REPO,
            (
                "no such file or directory",
                "file does not exist",
                "the specified key does not exist",
                "config/> does not exist",
                "specified container does not exist",
                "object doesn't exist",
                "specified bucket does not exist",
                "nosuchbucket",
                # b2 (its 404 noise also follows successful commands, so only on the config file):
                "unable to open config file: stat: b2_download_file_by_name: 404",
            ),
        ),
        (Failure.NO_SNAPSHOT, ("no snapshot found", "no matching id found")),
    ]
    for failure, needles in checks:
        if any(n in text for n in needles):
            return failure
    return Failure.UNKNOWN


def _detail(stderr: str) -> str:
    """The most useful single line of restic's stderr (the Fatal: line if any)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Fatal:") or "error" in ln.lower() or "denied" in ln.lower():
            return ln[:300]
    return lines[-1][:300] if lines else ""


def global_args(repo: Repository, password_fd: int) -> list[str]:
    argv = [binary(), "--cache-dir", str(paths.sub_dir("cache")), "--password-file", f"/dev/fd/{password_fd}"]
    argv += list(repo.args)
    if insecure_tls():
        argv.append("--insecure-tls")
    return argv


@contextmanager
def _prepared(repo: Repository) -> Iterator[tuple[dict[str, str], int, Any]]:
    """Yield (environment, password fd, bearer proxy or None) for one restic process; closes the fd and
    the proxy afterwards."""
    with ExitStack() as stack:
        read_fd, write_fd = os.pipe()
        stack.callback(_close_quietly, read_fd)
        try:
            os.write(write_fd, repo.password.encode())
        finally:
            os.close(write_fd)
        env = _base_env()
        env.update(repo.env)
        location = repo.location
        proxy = None
        if repo.bearer is not None:
            from .bearer_proxy import BearerProxy

            proxy = stack.enter_context(
                BearerProxy(
                    repo.bearer.upstream, repo.bearer.token, cacert=repo.bearer.cacert, insecure_tls=insecure_tls()
                )
            )
            location = "rest:" + proxy.restic_url
        env["RESTIC_REPOSITORY"] = location
        yield env, read_fd, proxy


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a restic process and its children (ssh, ...), politely first so restic drops its lock."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run(
    repo: Repository,
    args: Sequence[str],
    *,
    stdin: IO[bytes] | int | None = None,
    input: bytes | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    check: bool = True,
    extra_fds: dict[str, bytes] | None = None,
) -> Result:
    """Run `restic <args>` against `repo`; return its Result, or raise ResticError when check is set.

    `extra_fds` maps a placeholder in args (e.g. "{newpass}") to bytes handed over on a pipe, for
    options that take a file of secret content (`key add --new-password-file`).
    """
    _reset_ssh_log(repo)
    with _prepared(repo) as (env, pw_fd, proxy):
        fds = [pw_fd]
        argv = global_args(repo, pw_fd) + list(args)
        for placeholder, content in (extra_fds or {}).items():
            r, w = os.pipe()
            os.write(w, content)
            os.close(w)
            fds.append(r)
            argv = [a.replace(placeholder, f"/dev/fd/{r}") for a in argv]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else (stdin if stdin is not None else subprocess.DEVNULL),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                pass_fds=fds,
                start_new_session=True,
            )
        except OSError as exc:
            raise OperationFailed(f"cannot start restic: {exc.strerror}") from None
        finally:
            for fd in fds[1:]:
                _close_quietly(fd)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise ResticError(Failure.TIMEOUT, f"restic {args[0]} did not finish within {timeout:.0f} s") from None
        except BaseException:
            _stop(proc)
            raise
        stderr = err.decode(errors="replace")
        if proxy is not None and proxy.last_error:
            # restic only saw a 502 from the proxy; the proxy knows why (TLS, unreachable).
            stderr += f"\nbearer proxy: {proxy.last_error}"
    if proc.returncode != 0:
        stderr = _ssh_errors(repo) + stderr
    result = Result(proc.returncode, out, repo.redact(stderr))
    if check and result.returncode != 0:
        raise error_for(repo, result)
    return result


def _reset_ssh_log(repo: Repository) -> None:
    if repo.ssh_log:
        try:
            with open(repo.ssh_log, "w"):
                pass
        except OSError:
            pass


def _ssh_errors(repo: Repository) -> str:
    """ssh's own error lines for this run, as restic would print them ("subprocess ssh: ..."), or ""."""
    if not repo.ssh_log:
        return ""
    try:
        with open(repo.ssh_log, errors="replace") as f:
            text = f.read(16384)
    except OSError:
        return ""
    return "".join(f"subprocess ssh: {line.strip()}\n" for line in text.splitlines() if line.strip())


def error_for(repo: Repository, result: Result) -> ResticError:
    return ResticError(classify(result.returncode, result.stderr), repo.redact(_detail(result.stderr)), result.returncode)


@contextmanager
def popen(
    repo: Repository, args: Sequence[str], *, stdin: IO[bytes] | int | None = None, stdout: IO[bytes] | int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `restic <args>` for streaming (stdin/stdout are the caller's); stop it if the block fails."""
    with _prepared(repo) as (env, pw_fd, _proxy):
        proc = subprocess.Popen(
            global_args(repo, pw_fd) + list(args),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=[pw_fd],
            start_new_session=True,
        )
        try:
            yield proc
        except BaseException:
            _stop(proc)
            raise
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None and not stream.closed and proc.poll() is not None:
                    stream.close()


class Running:
    """A restic process whose stdout (JSON lines) and stderr are drained by threads while the caller
    feeds its stdin (for `backup --stdin`) or just waits; `on_message` sees every JSON message as it
    arrives (progress). Use as a context manager: leaving the block early stops the process."""

    def __init__(
        self,
        repo: Repository,
        args: Sequence[str],
        *,
        feed_stdin: bool = False,
        on_message: Any = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        import threading

        self.repo = repo
        self.args = list(args)
        self._stack = ExitStack()
        env, pw_fd, self._proxy = self._stack.enter_context(_prepared(repo))
        try:
            self.proc = subprocess.Popen(
                list(wrapper) + global_args(repo, pw_fd) + self.args,
                stdin=subprocess.PIPE if feed_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                pass_fds=[pw_fd],
                start_new_session=True,
            )
        except OSError as exc:
            self._stack.close()
            raise OperationFailed(f"cannot start restic: {exc.strerror}") from None
        self.messages: list[Any] = []
        self._stderr: list[bytes] = []
        self._on_message = on_message
        self.broken = False
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith(b"{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("message_type") != "status":
                self.messages.append(message)
            if self._on_message is not None:
                self._on_message(message)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def write(self, data: bytes) -> bool:
        """Feed stdin; False (and `broken`) once restic has gone away, so a fan-out can carry on."""
        if self.broken or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(data)
            return True
        except (BrokenPipeError, ValueError, OSError):
            self.broken = True
            return False

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                self.broken = True

    def wait(self, timeout: float | None = DEFAULT_TIMEOUT) -> Result:
        self.close_stdin()
        # Join the output readers first (they end at restic's exit): Popen.wait(timeout) polls with sleeps
        # of up to 50 ms, a delay every short restic call would pay.
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        try:
            self.proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(self.proc)
        for thread in self._threads:
            thread.join()
        stderr = b"".join(self._stderr).decode(errors="replace")
        if self._proxy is not None and self._proxy.last_error:
            stderr += f"\nbearer proxy: {self._proxy.last_error}"
        return Result(self.proc.returncode, b"", self.repo.redact(stderr))

    def summary(self) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message.get("message_type") == "summary":
                return message
        return None

    def errors(self) -> list[str]:
        """Items restic could not read (backup's JSON error messages)."""
        return [str(m.get("item") or m.get("error")) for m in self.messages if m.get("message_type") == "error"]

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stack.close()


def snapshot_time(value: str) -> str:
    """Format an ISO time for `restic backup --time` (restic reads it in TZ=UTC, see _base_env)."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run_unlocking(repo: Repository, args: Sequence[str], **kwargs: Any) -> Result:
    """Run restic; if the repository is locked, clear stale locks with `restic unlock` (which removes only
    locks of dead processes or older than 30 min) and retry once. A live lock is reported, not broken."""
    try:
        return run(repo, args, **kwargs)
    except ResticError as exc:
        if exc.failure is not Failure.LOCKED:
            raise
    run(repo, ["unlock"], timeout=kwargs.get("timeout", DEFAULT_TIMEOUT))
    try:
        return run(repo, args, **kwargs)
    except ResticError as exc:
        if exc.failure is Failure.LOCKED:
            raise ResticError(Failure.LOCKED, "held by a running restic process; not broken") from None
        raise
