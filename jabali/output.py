"""Printing: human tables (tabulate) by default, JSON with --json. Commands call these, never print()."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], empty: str = "(none)") -> None:
    if not rows:
        click.echo(empty)
        return
    from tabulate import tabulate

    click.echo(tabulate([[_cell(v) for v in row] for row in rows], headers=list(headers), tablefmt="simple"))


def print_record(record: dict[str, Any]) -> None:
    rows = []
    for key, value in record.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                rows.append([f"{key}.{sub}", _cell(subvalue)])
        else:
            rows.append([key, _cell(value)])
    from tabulate import tabulate

    click.echo(tabulate(rows, tablefmt="plain"))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
