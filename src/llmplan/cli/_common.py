"""What every subcommand shares: the console, JSON output, display units and common options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmplan.errors import SpecError
from llmplan.schema import Envelope, dump
from llmplan.units import gib  # noqa: F401 (`_common.gib` in the subcommands)

# Piped output (files, pagers, tests) gets a wide console so that no figure is ever cut to "…"; a terminal
# keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 200)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print versioned, strict JSON (bytes as integers; docs/json.md).")
]


def print_json(out: Envelope) -> None:
    """Write a command's output model as strict JSON (llmplan.schema: versioned, no NaN or Infinity)."""
    sys.stdout.write(dump(out) + "\n")


def billions(count: float) -> str:
    """A parameter count in B (10**9)."""
    return f"{count / 1e9:,.3f}B"


def prepare_output(path: Path, option: str = "--write") -> Path:
    """Check, before any work, that `path` can be written: not a folder; missing parent folders are created.
    Only the file the user names is ever written (nothing else, no tracked doc by default)."""
    if path.is_dir():
        raise SpecError(
            option, f"{str(path)!r} is a folder (allowed: a file path, e.g. {path / 'report.md'})"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(
            option,
            f"cannot create the folder {str(path.parent)!r}: {exc.strerror} (allowed: a writable path)",
        ) from None
    return path


def write_output(path: Path, text: str | bytes, option: str = "--write") -> None:
    """Write `text` to `path` whole (a temporary file renamed over it), or fail with a SpecError and leave an
    existing file as it was (a full disk, a read-only folder)."""
    prepare_output(path, option)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(text) if isinstance(text, bytes) else tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SpecError(
            option, f"cannot write {str(path)!r}: {exc.strerror} (allowed: a writable file path)"
        ) from None
