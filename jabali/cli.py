"""The root `jabali` command: opens the App, turns library errors into one-line messages and exit codes."""

from __future__ import annotations

from typing import Any

import click

from . import __version__
from .app import App
from .errors import JabaliError


class JabaliGroup(click.Group):
    """Maps every JabaliError to `Error: <one line>` and its exit code, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JabaliError as exc:
            error = click.ClickException(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
            error.exit_code = exc.exit_code
            raise error from None


@click.group(cls=JabaliGroup)
@click.version_option(__version__, prog_name="jabali")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """jabali: backups of hosting accounts to restic repositories.

    Exit codes: 0 ok, 1 failed, 2 bad input (nothing changed), 3 partial failure, 4 busy (another run holds
    the lock). State lives in $JABALI_STATE_DIR (default /var/lib/jabali as root).
    """
    app = App()
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    from .commands import account, backup, destination, events, package, run_due, schedule, secrets, snapshot

    for module in (destination, schedule, package, account, backup, snapshot, secrets, events, run_due):
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="jabali")
