"""`jabali run-due`: the cron entry point. Runs whatever is due; quiet unless something failed."""

from __future__ import annotations

import sys

import click

from .. import rundue
from ..app import App
from ..errors import Partial
from ..output import json_option, print_json


@click.command("run-due")
@click.option("--dry-run", is_flag=True, help="Say what is due without doing it.")
@click.option("-v", "--verbose", is_flag=True, help="Also print what succeeded (the default on a terminal).")
@json_option
@click.pass_obj
def command(app: App, dry_run: bool, verbose: bool, as_json: bool) -> None:
    """Run what is due: daily destination re-tests (and, as they arrive, scheduled backups and restores).

    Only one run-due runs at a time; a second exits at once with status 4. Under cron (no terminal) it
    prints only failures, so cron mails only when something needs attention.
    """
    verbose = verbose or dry_run or sys.stdout.isatty()
    report = rundue.run_due(app, dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.lines(failed_only=not verbose):
            click.echo(line)
    if report.failures:
        raise Partial(f"{report.failures} item(s) failed; see `jabali events list`")
