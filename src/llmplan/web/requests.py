"""The web API's request bodies: the CLI's own options, read from the CLI's signatures.

Each model's fields are the options of the `llmplan.api` function it feeds (`TrainOptions`, `ServeOptions`,
`PlanOptions`), with the types and defaults of the `llmplan train` / `serve` / `plan` parameters of the same
name — declared once, in `llmplan/cli/`, so that a page request and a command line cannot drift apart. On top:
`model` (a catalog id; org/name when the server was started with --allow-hub) or `config` (the text of an
uploaded config.json, parsed as data). Unknown keys and NaN / Infinity are refused (422, naming the field);
the bounds of `llmplan.limits` are checked by the same `llmplan.api` code as on the command line (400).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from llmplan.api.plan import PlanOptions
from llmplan.api.serve import ServeOptions
from llmplan.api.train import TrainOptions
from llmplan.emit import Target
from llmplan.loading import MAX_CONFIG_BYTES

MODEL_ID_CHARS = 200
"""Longest model reference accepted (catalog ids are < 40 characters, hub ids at most 96 + 1 + 96)."""
TEXT_CHARS = 200
"""Longest free-text option (LoRA targets, token counts, GPU lists)."""


class ModelRef(BaseModel):
    """What every body starts with: the model, named or uploaded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: str | None = Field(None, max_length=MODEL_ID_CHARS, description="Catalog id (GET /api/models).")
    config: str | None = Field(
        None, max_length=MAX_CONFIG_BYTES, description="Text of a config.json, parsed as data (no code)."
    )


def _option_fields(command: Any, options: type) -> dict[str, Any]:
    """Field definitions for pydantic: each option of the dataclass `options`, typed and defaulted as the CLI
    function `command` declares it (Annotated typer metadata stripped)."""
    hints = typing.get_type_hints(command)
    params = inspect.signature(command).parameters
    out: dict[str, Any] = {}
    for f in fields(options):
        kind = hints[f.name]
        if kind is str or kind == (str | None):
            out[f.name] = (kind, Field(params[f.name].default, max_length=TEXT_CHARS))
        else:
            out[f.name] = (kind, params[f.name].default)
    return out


def _model(name: str, command: Any, options: type, **extra: Any) -> type[ModelRef]:
    return create_model(name, __base__=ModelRef, __doc__=command.__doc__, **_option_fields(command, options), **extra)


def _build() -> tuple[type[ModelRef], type[ModelRef], type[ModelRef], type[ModelRef]]:
    from llmplan.cli.plan import plan
    from llmplan.cli.serve import serve
    from llmplan.cli.train import train

    train_req = _model("TrainRequest", train, TrainOptions)
    serve_req = _model("ServeRequest", serve, ServeOptions)
    plan_req = _model("PlanRequest", plan, PlanOptions)
    emit_req = _model(
        "EmitRequest", train, TrainOptions, target=(Target, Field(Target.DEEPSPEED, description="What to write."))
    )
    return train_req, serve_req, plan_req, emit_req


TrainRequest, ServeRequest, PlanRequest, EmitRequest = _build()


def train_options(req: ModelRef) -> TrainOptions:
    return TrainOptions.of(req.__dict__)


def serve_options(req: ModelRef) -> ServeOptions:
    return ServeOptions.of(req.__dict__)


def plan_options(req: ModelRef) -> PlanOptions:
    return PlanOptions.of(req.__dict__)

