"""The `llmplan train` command line that reproduces a suggestion.

The command is the user's own options with the suggestion's changes made, written out wherever a value differs
from the option's default: running it prints the very estimate the suggestion announced (the flags a method
change implies, such as the LoRA rank and targets it was estimated with, are among the changes).
"""

from __future__ import annotations

import shlex
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache

from typer.models import OptionInfo

from llmplan.estimate.changes import Change, Part, Value
from llmplan.estimate.suggest import Suggestion
from llmplan.specs.training import Layout, OffloadTarget, ZeroStage

_RENAMED = {
    (Part.JOB, "micro_batch_size"): "micro_batch",
    (Part.JOB, "seq_len"): "seq",
    (Part.JOB, "grad_accum_steps"): "grad_accum",
}
"""Fields whose `train` option parameter has another name (every other field's parameter is its name)."""
_OFFLOAD_FIELDS = ("offload_optimizer", "offload_params")


def _option_value(value: Value) -> object:
    """A field's value as its option takes it: module names comma-joined, a ZeRO stage as its number."""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, ZeroStage):
        return int(value)
    return value


def options(given: Mapping[str, object], tip: Suggestion) -> dict[str, object]:
    """The `train` option values that reproduce the suggestion: the given ones with its changes made."""
    values = dict(given)
    for c in tip.changes:
        if c.part is Part.LAYOUT and c.field in _OFFLOAD_FIELDS:
            values.update(_offload_options(tip.layout))
            continue
        name = _RENAMED.get((c.part, c.field), c.field)
        if name not in _flags():
            raise ValueError(f"no `llmplan train` option sets {c.part.value}.{c.field}")
        values[name] = _option_value(c.after)
    return values


def _offload_options(layout: Layout) -> dict[str, object]:
    from llmplan.cli.train import OffloadWhat

    opt, par = layout.offload_optimizer, layout.offload_params
    what = {
        (True, True): OffloadWhat.BOTH,
        (True, False): OffloadWhat.OPTIMIZER,
        (False, True): OffloadWhat.PARAMS,
        (False, False): None,
    }[(opt is not OffloadTarget.NONE, par is not OffloadTarget.NONE)]
    if what is OffloadWhat.BOTH and opt is not par:
        raise ValueError(
            f"one --offload-target cannot place the optimizer on {opt.value}, parameters on {par.value}"
        )
    target = opt if opt is not OffloadTarget.NONE else par
    return {"offload": what} if what is None else {"offload": what, "offload_target": target}


def command(model_ref: str, given: Mapping[str, object], tip: Suggestion) -> str:
    """`llmplan train MODEL` with every option whose value (after the suggestion's changes) is not its
    default, in the order `train` declares them."""
    words = ["llmplan", "train", model_ref]
    for name, value in options(given, tip).items():
        if name not in _flags():
            continue
        flag, default = _flags()[name]
        if value == default or value is None:
            continue
        if isinstance(value, bool):
            if default is not False:
                raise ValueError(f"{flag} defaults to {default!r}: no flag turns it off")
            words.append(flag)
            continue
        words += [flag, _word(value)]
    return shlex.join(words)


def describe(changes: tuple[Change, ...]) -> str:
    """The changes for a reader: `precision bf16-mixed -> bf16, optimizer adamw -> adamw8bit`."""
    return ", ".join(f"{c.field} {_shown(c.before)} -> {_shown(c.after)}" for c in changes)


def _shown(value: Value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None:
        return "none"
    return _word(value)


def _word(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


@cache
def _flags() -> dict[str, tuple[str, object]]:
    """Parameter of `train` -> (its first option name, its default), for every option of the job and layout
    (the model argument and output switches --explain / --json left out)."""
    import inspect

    from llmplan.cli import train as train_cli

    hints = typing.get_type_hints(train_cli.train, include_extras=True)
    out = {}
    for name, param in inspect.signature(train_cli.train).parameters.items():
        info = next((m for m in getattr(hints[name], "__metadata__", ()) if isinstance(m, OptionInfo)), None)
        if info is None or name in _OUTPUT_ONLY:
            continue
        # with Annotated, typer reads a string `default` as the first option name
        names = ([info.default] if isinstance(info.default, str) else []) + list(info.param_decls)
        out[name] = (names[0], param.default)
    return out


_OUTPUT_ONLY = frozenset({"explain", "json_out", "from_file", "emit_target", "out", "plot"})
"""Options that change what is printed, never the estimate."""
