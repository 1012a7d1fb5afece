"""The `llmplan` command: a short router over one module per subcommand.

Every subcommand is a thin layer over the Python API; errors of input (LlmplanError) are printed on one line
to stderr with exit status 2, never as a traceback; several problems found at once (InvalidInputError) are
printed one line each.
"""

from __future__ import annotations

import sys

import typer

from llmplan.cli import clusters, formats, gpus, measure, models, params, serve, trace, train, validate
from llmplan.errors import LlmplanError

app = typer.Typer(
    name="llmplan",
    help="Plan LLM training, fine-tuning and inference before renting GPUs: memory per GPU, time, cost, layout.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (models, gpus, clusters, params, validate, serve, formats, trace, measure, train):
    module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llmplan` script and `python -m llmplan`; returns the exit status."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="llmplan", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        exc.show()
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except LlmplanError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
