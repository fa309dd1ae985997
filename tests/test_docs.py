"""Every command has --help text and a place in docs/cli.md, and that file is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import pytest

from jabali.cli import cli

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)  # type: ignore[union-attr]

COMMANDS = gen.walk(cli, ["jabali"])


def test_every_command_is_walked() -> None:
    # Guards the walk itself: the root group loads its commands lazily.
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"jabali destination create", "jabali restore undo", "jabali tenant download", "jabali run-due"} <= names
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_and_reference(path: list[str], command: click.Command) -> None:
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"
    assert f"## {' '.join(path)}\n" in (ROOT / "docs" / "cli.md").read_text()


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == gen.render(), "run: python scripts/gen_cli_docs.py"


def test_every_read_command_has_json() -> None:
    for path, command in COMMANDS:
        if path[-1] in ("list", "get", "show", "ls", "snapshots", "schedules", "requests"):
            assert any("--json" in getattr(p, "opts", []) for p in command.params), " ".join(path)
