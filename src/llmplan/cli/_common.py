"""What every subcommand shares: the console, JSON output, display units and common options."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from llmplan.units import GIB

# Piped output (files, pagers, tests) gets a wide console so that no figure is ever cut to "…"; a terminal
# keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 200)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (bytes as integers).")]


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and tuples -> plain JSON types; ints stay ints (byte figures are never rounded)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        total = getattr(type(value), "total", None)
        if isinstance(total, property):
            out["total"] = to_jsonable(value.total)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2) + "\n")


def gib(n_bytes: float) -> str:
    """Bytes shown in GiB (2**30), two decimals."""
    return f"{n_bytes / GIB:,.2f}"


def billions(count: float) -> str:
    """A parameter count in B (10**9)."""
    return f"{count / 1e9:,.3f}B"
