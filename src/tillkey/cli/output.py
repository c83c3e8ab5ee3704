"""Printing a result: a table for people, one JSON object with `--json` for scripts."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(type(obj).__name__)


def emit(obj: dict[str, Any], as_json: bool, title: str) -> None:
    obj = {k: v for k, v in obj.items() if k != "password_hash"}
    if as_json:
        sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
        return
    table = Table(title=title, show_header=False)
    for k, v in obj.items():
        table.add_row(k, _cell(v))
    out.print(table)


def _cell(value: Any) -> str:
    """A value as people read it: a list of resources as `a, b`, not a Python tuple."""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)
