"""`jabali destination ...`: manage the repositories backups are written to."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from .. import destination_ops as ops
from .. import destinations
from ..app import App
from ..errors import OperationFailed
from ..output import json_option, print_json, print_record, print_table


def _type_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per destination field (shared names like --path serve several types)."""
    seen: dict[str, list[str]] = {}
    for type_, fields in destinations.FIELDS.items():
        for f in fields:
            seen.setdefault(f.key, []).append(f"{type_}: {f.help}")
    for key in reversed(list(seen)):
        field = destinations.ALL_FIELDS[key]
        help_text = "; ".join(seen[key])
        if field.envvar:
            help_text += f". Also read from ${field.envvar}"
            if field.secret:
                help_text += ", or prompted for (hidden) on a terminal"
        fn = click.option(
            field.option,
            key,
            type=int if field.is_int else str,
            default=None,
            envvar=field.envvar,
            show_envvar=False,
            help=help_text,
        )(fn)
    return fn


def _prompt_missing_secrets(type_: str, values: dict[str, Any]) -> None:
    """On a terminal, ask (hidden) for required secrets not given by option or environment."""
    if not sys.stdin.isatty():
        return
    for f in destinations.FIELDS.get(type_, ()):
        if f.secret and f.required and not values.get(f.key):
            values[f.key] = click.prompt(f.option.lstrip("-"), hide_input=True)


def _values(type_: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The field values given; an environment variable meant for another type is ignored, not an error."""
    allowed = {f.key for f in destinations.FIELDS.get(type_, ())}
    ctx = click.get_current_context()
    values = {}
    for key, value in kwargs.items():
        if key not in destinations.ALL_FIELDS or value is None:
            continue
        if key not in allowed and ctx.get_parameter_source(key) is click.core.ParameterSource.ENVIRONMENT:
            continue
        values[key] = value
    return values


@click.group("destination")
def command() -> None:
    """Manage backup destinations (restic repositories)."""


@command.command("list")
@json_option
@click.pass_obj
def list_(app: App, as_json: bool) -> None:
    """List destinations with their last test result."""
    dests = app.store.destinations()
    if as_json:
        print_json([ops.view(app, d) for d in dests])
        return
    rows = [
        [
            d.id,
            d.name,
            d.type,
            destinations.location(d.type, d.config),
            d.last_test_at,
            ops.test_state(d),
            d.last_test_message,
        ]
        for d in dests
    ]
    print_table(rows, ["id", "name", "type", "location", "last test", "result", "message"], "(no destinations)")


@command.command("get")
@click.argument("ref", metavar="ID-OR-NAME")
@click.option("--show-password", is_flag=True, help="Also print the repository password (for a sealed envelope).")
@json_option
@click.pass_obj
def get(app: App, ref: str, show_password: bool, as_json: bool) -> None:
    """Show one destination. Credentials are never shown; the repository password only with --show-password."""
    record = ops.view(app, ops.get(app, ref), show_password=show_password)
    if as_json:
        print_json(record)
    else:
        print_record(record)


@command.command("create")
@click.option("--type", "type_", required=True, type=click.Choice(destinations.TYPES), help="Destination type.")
@click.option("--name", required=True, help="Unique name (letters, digits, '.', '_', '-').")
@_type_options
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Adopt an existing repository: read its password from standard input instead of generating one.",
)
@json_option
@click.pass_obj
def create(app: App, type_: str, name: str, password_stdin: bool, as_json: bool, **kwargs: Any) -> None:
    """Add a destination. Credentials are checked syntactically; nothing is saved if one fails.

    Run `jabali destination test NAME` next: it connects, initialises the repository if there is none and
    proves write access. Only a tested destination can be chosen for a schedule.
    """
    values = _values(type_, kwargs)
    _prompt_missing_secrets(type_, values)
    password = sys.stdin.readline() if password_stdin else None
    dest = ops.create(app, type_, name, values, password)
    if as_json:
        print_json(ops.view(app, dest))
    else:
        click.echo(f"created destination {dest.name} (id {dest.id}); next: jabali destination test {dest.name}")


@command.command("update")
@click.argument("ref", metavar="ID-OR-NAME")
@click.option("--name", "new_name", default=None, help="Rename the destination.")
@_type_options
@json_option
@click.pass_obj
def update(app: App, ref: str, new_name: str | None, as_json: bool, **kwargs: Any) -> None:
    """Change some fields of a destination. A change to where or how it connects clears its last test."""
    dest = ops.get(app, ref)
    dest = ops.update(app, ref, _values(dest.type, kwargs), new_name)
    if as_json:
        print_json(ops.view(app, dest))
    else:
        state = "" if dest.last_test_ok is not None else "; test it again before use"
        click.echo(f"updated destination {dest.name}{state}")


@command.command("delete")
@click.argument("ref", metavar="ID-OR-NAME")
@click.pass_obj
def delete(app: App, ref: str) -> None:
    """Remove a destination (refused while a schedule targets it). The repository's data is not touched."""
    dest = ops.delete(app, ref)
    click.echo(f"deleted destination {dest.name} (repository data left in place at {destinations.location(dest.type, dest.config)})")


@command.command("test")
@click.argument("ref", metavar="ID-OR-NAME")
@json_option
@click.pass_obj
def test(app: App, ref: str, as_json: bool) -> None:
    """Connect, initialise the repository if none exists, and prove write and delete permission."""
    dest, result = ops.test(app, ref)
    if as_json:
        print_json({"destination": dest.name, "ok": result.ok, "message": result.message, "step": result.step})
    elif result.ok:
        click.echo(f"{dest.name}: {result.message}")
    if not result.ok:
        raise OperationFailed(f"destination {dest.name}: {result.message}")
