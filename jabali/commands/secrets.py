"""`jabali secrets ...`: the master key that encrypts every stored secret."""

from __future__ import annotations

import click

from ..app import App


@click.group("secrets")
def command() -> None:
    """Manage the master key that encrypts stored secrets."""


@command.command("rotate-key")
@click.pass_obj
def rotate_key(app: App) -> None:
    """Re-encrypt every secret under a new master key, atomically. Back up the new key file afterwards."""
    count = app.vault.rotate()
    click.echo(f"re-encrypted {count} secret(s) under a new master key at {app.vault.key_path}")
