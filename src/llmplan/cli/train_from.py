"""`llmplan train --from FILE`: the `train` options a DeepSpeed JSON or a peft adapter_config.json sets.

The file's values replace the options they stand for; every other option keeps its value (the model, the
sequence length, the method of a DeepSpeed JSON, ...). The result is the parameter dict `train` is called with,
so that `llmplan emit` followed by `llmplan train --from` prints the estimate of the emitting command, byte
for byte (tests/test_emit_readback.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmplan.emit import deepspeed as ds
from llmplan.emit import peft as peft_emit
from llmplan.emit import read_error
from llmplan.errors import SpecError
from llmplan.loading import load_model
from llmplan.specs.training import Layout, OffloadTarget, ZeroStage


def params(path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (the `train` parameters) with the file's values put in, and `from_file` cleared."""
    name = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(
            "--from", f"cannot read {name!r}: {exc.strerror} (allowed: a readable file)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(
            "--from", f"{name}: not JSON ({exc}) (allowed: a DeepSpeed JSON, adapter_config.json)"
        ) from None
    out = {**given, "from_file": None}
    if isinstance(data, dict) and "peft_type" in data:
        return out | _peft(data, name, out)
    if isinstance(data, dict) and ("train_micro_batch_size_per_gpu" in data or "zero_optimization" in data):
        return out | _deepspeed(data, name, out)
    raise read_error(
        name,
        "peft_type",
        "is missing, and so are train_micro_batch_size_per_gpu and zero_optimization (allowed: a peft "
        "adapter_config.json or a DeepSpeed JSON)",
    )


def _peft(data: dict[str, Any], name: str, given: dict[str, Any]) -> dict[str, Any]:
    spec = load_model(given["model"])
    plan = peft_emit.read(data, name, given["method"], spec.hidden_size)
    values = {
        "method": plan.method,
        "lora_rank": plan.lora_rank,
        "lora_alpha": plan.lora_alpha,
        "lora_targets": plan.lora_targets,
        "lora_dropout": plan.lora_dropout,
        "num_virtual_tokens": plan.num_virtual_tokens,
    }
    return {k: v for k, v in values.items() if v is not None}


def _deepspeed(data: dict[str, Any], name: str, given: dict[str, Any]) -> dict[str, Any]:
    plan = ds.read(data, name)
    opt, par = plan.offload_optimizer, plan.offload_params
    if OffloadTarget.NONE not in (opt, par) and opt is not par:
        raise read_error(
            name,
            "zero_optimization.offload_param.device",
            f"{par.value} differs from offload_optimizer's {opt.value} (allowed: one device for both)",
        )
    offload, target = _offload(opt, par)
    model_parallel = given["tp"] * given["pp"] * given["cp"]
    layout = Layout(dp=plan.dp, zero=ZeroStage(plan.zero), stack=given["stack"])
    ds.check_sizes(data, name, load_model(given["model"]), layout)
    values: dict[str, Any] = {
        "micro_batch": plan.micro_batch,
        "grad_accum": plan.grad_accum,
        "gpus": plan.dp * model_parallel,
        "dp": None,
        "nodes": None,
        "zero": plan.zero,
        "precision": plan.precision,
        "offload": offload,
        "offload_target": target if target is not None else given["offload_target"],
    }
    if plan.optimizer is not None:
        values |= {"optimizer": plan.optimizer, "optimizer_impl": plan.optimizer_impl}
    return values


def _offload(opt: OffloadTarget, par: OffloadTarget) -> tuple[Any, OffloadTarget | None]:
    from llmplan.cli.train import OffloadWhat

    on_opt, on_par = opt is not OffloadTarget.NONE, par is not OffloadTarget.NONE
    what = {
        (True, True): OffloadWhat.BOTH,
        (True, False): OffloadWhat.OPTIMIZER,
        (False, True): OffloadWhat.PARAMS,
        (False, False): None,
    }[(on_opt, on_par)]
    return what, (opt if on_opt else par if on_par else None)
