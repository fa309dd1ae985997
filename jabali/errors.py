"""Exceptions and the one place that maps them to exit codes.

Exit codes (documented in README.md):
  0  success
  1  the operation failed (a destination, restic, a dump, ...)
  2  bad input or usage: nothing was changed
  3  partial: some accounts or destinations failed, others succeeded
  4  busy: another jabali run holds the lock
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_BUSY = 4


class JabaliError(Exception):
    """Base class: a one-line message for the operator and an exit code."""

    exit_code = EXIT_FAILED


class InvalidInput(JabaliError):
    """Given a field name and the rule it broke, say so; nothing has been stored."""

    exit_code = EXIT_USAGE

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class NotFound(JabaliError):
    exit_code = EXIT_USAGE


class Conflict(JabaliError):
    """The request is well-formed but the current state refuses it (e.g. a destination in use)."""

    exit_code = EXIT_USAGE


class Busy(JabaliError):
    exit_code = EXIT_BUSY


class OperationFailed(JabaliError):
    exit_code = EXIT_FAILED


class Partial(JabaliError):
    exit_code = EXIT_PARTIAL
