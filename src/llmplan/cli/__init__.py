"""The `llmplan` command: a short router over one module per subcommand.

Every subcommand is a thin layer over the Python API; errors of input (LlmplanError) are printed on one line
to stderr with exit status 2, never as a traceback; several problems found at once (InvalidInputError) are
printed one line each.
"""

from __future__ import annotations

import functools
import re
import sys

import typer

from llmplan.cli import (
    clusters,
    emit,
    formats,
    gpus,
    measure,
    models,
    params,
    plan,
    serve,
    trace,
    train,
    validate,
    web,
)
from llmplan.cli._usage import usage_line
from llmplan.errors import LlmplanError

app = typer.Typer(
    name="llmplan",
    help="Plan LLM training, fine-tuning and inference before renting GPUs: memory per GPU, time, cost, layout.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (models, gpus, clusters, params, validate, serve, formats, trace, measure, train, plan, emit, web):
    module.register(app)


@functools.cache
def _command() -> typer.core.TyperGroup:
    """The click command of `app`, built once (building it takes ~30 ms, more than a plan)."""
    return typer.main.get_command(app)


_NEGATIVE = re.compile(r"-(\d|\.\d|inf$|infinity$|nan$)", re.IGNORECASE)


def _negative_values(args: list[str]) -> list[str]:
    """`llmplan formats -1.5` reads -1.5 as VALUE, not as an option: a `--` is put before it."""
    if len(args) >= 2 and args[0] == "formats" and _NEGATIVE.match(args[1]):
        return [args[0], *args[2:], "--", args[1]]
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llmplan` script and `python -m llmplan`; returns the exit status."""
    command = _command()
    args = _negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        result = command.main(args=args, prog_name="llmplan", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        if type(exc).__name__ == "NoArgsIsHelpError":  # `llmplan` alone: the help is already printed
            return 2
        print(f"error: {usage_line(exc, sorted(command.commands), args)}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except LlmplanError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
