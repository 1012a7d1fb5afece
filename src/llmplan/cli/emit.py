"""`llmplan emit TARGET MODEL [train options]`: the plan's launch config for an engine (docs/emit.md).

`emit` takes exactly the options of `llmplan train` (its signature is train's, with the target in front), so
that the config describes the plan `llmplan train` estimates with the same options; `llmplan train --emit
TARGET` is the same command. The config goes to stdout, or to `--out FILE`; the launch command and the plan's
estimate go to stderr, so that stdout can be piped into a file.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmplan.api.emit import launch_config
from llmplan.cli import train as train_cli
from llmplan.cli._common import gib, write_output
from llmplan.emit import Target
from llmplan.estimate.training import TrainingEstimate
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec

TargetArg = Annotated[
    Target, typer.Argument(help="What to write: deepspeed (ds_config.json), peft, accelerate (YAML).")
]


def write(target: Target, spec: ModelSpec, est: TrainingEstimate, cluster: Cluster, out: Path | None) -> None:
    """Write the config (to `out` or stdout) and, on stderr, the launch command and the estimate."""
    cfg = launch_config(target, spec, est, cluster)
    verdict = "fits" if est.fits else "DOES NOT FIT"
    summary = (
        f"plan: {est.model} on {est.layout.num_gpus} × {est.accelerator}, {gib(est.device_bytes)} GiB per GPU "
        f"of {gib(est.capacity_bytes)} ({verdict}), {est.trainable_params:,} trainable parameters"
    )
    if out is None:
        sys.stdout.write(cfg.text)
    else:
        write_output(out, cfg.text, "--out")
        print(f"wrote {out}", file=sys.stderr)
    print(summary, file=sys.stderr)
    print(f"launch: {cfg.command}", file=sys.stderr)


def _emit(ctx: typer.Context, target: Target, **options: Any) -> None:
    options.pop("emit_target", None)
    train_cli.train(ctx, emit_target=target, **options)


def _signature() -> inspect.Signature:
    """train's parameters (annotations resolved) with the target argument after the context."""
    params = list(inspect.signature(train_cli.train, eval_str=True).parameters.values())
    target = inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TargetArg)
    kept = [p for p in params if p.name not in ("emit_target", "explain", "json_out")]
    return inspect.Signature([kept[0], target, *kept[1:]])


def emit(ctx: typer.Context, target: Target, **options: Any) -> None:
    """Write the launch config of a training plan: DeepSpeed JSON (+ the launcher command) or the peft
    adapter_config.json; every value the estimate depends on is written (docs/emit.md)."""
    _emit(ctx, target, **options)


emit.__signature__ = _signature()  # type: ignore[attr-defined]
emit.__annotations__ = {p.name: p.annotation for p in emit.__signature__.parameters.values()}  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command()(emit)
