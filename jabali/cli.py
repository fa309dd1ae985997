"""The root `jabali` command: opens the App, turns library errors into one-line messages and exit codes."""

from __future__ import annotations

import importlib
import signal
from typing import Any

import click

from . import __version__
from .app import App
from .errors import JabaliError


# Command name -> module in jabali.commands, imported only when that command runs (fast start-up matters:
# the panel calls `snapshot list --json` often, and cron starts run-due every few minutes).
COMMANDS = {
    "destination": "destination",
    "schedule": "schedule",
    "package": "package",
    "account": "account",
    "backup": "backup",
    "snapshot": "snapshot",
    "restore": "restore",
    "tenant": "tenant",
    "download": "download",
    "secrets": "secrets",
    "events": "events",
    "run-due": "run_due",
}


class JabaliGroup(click.Group):
    """Loads commands lazily and maps every JabaliError to `Error: <one line>` and its exit code, in one place."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        return importlib.import_module(f"jabali.commands.{module}").command  # type: ignore[no-any-return]

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


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (systemd stop, kill) unwinds like Ctrl-C: running backups and restores are marked
    # interrupted and restic children are stopped, so nothing is left "running".
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="jabali")
