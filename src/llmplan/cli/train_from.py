"""`llmplan train --from FILE`: the `train` options a DeepSpeed JSON, a peft adapter_config.json or an
accelerate config YAML sets.

The file's values replace the options they stand for; every other option keeps its value (the model, the
sequence length, the method of a DeepSpeed JSON, ...). The result is the parameter dict `train` is called with,
so that `llmplan emit` followed by `llmplan train --from` prints the estimate of the emitting command, byte
for byte (tests/test_emit_readback.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmplan.emit import accelerate as acc_emit
from llmplan.emit import deepspeed as ds
from llmplan.emit import peft as peft_emit
from llmplan.emit import read_error
from llmplan.errors import SpecError
from llmplan.loading import load_model
from llmplan.specs.training import Layout, OffloadTarget, Precision, Recompute, ZeroStage


def params(path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (the `train` parameters) with the file's values put in, and `from_file` cleared."""
    name = str(path)
    data = _load(path, name)
    out = {**given, "from_file": None}
    if isinstance(data, dict) and "distributed_type" in data:
        return out | _accelerate(data, name, out)
    if isinstance(data, dict) and "peft_type" in data:
        return out | _peft(data, name, out)
    if isinstance(data, dict) and ("train_micro_batch_size_per_gpu" in data or "zero_optimization" in data):
        return out | _deepspeed(data, name, out)
    raise read_error(
        name,
        "peft_type",
        "is missing, and so are train_micro_batch_size_per_gpu, zero_optimization and distributed_type "
        "(allowed: a peft adapter_config.json, a DeepSpeed JSON or an accelerate config YAML)",
    )


def _load(path: Path, name: str) -> Any:
    """The file as JSON, else as YAML (an accelerate config); SpecError when it is neither."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise SpecError("--from", f"cannot read {name!r}: {why} (allowed: a readable text file)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise SpecError(
            "--from",
            f"{name}: not JSON ({json_error}) nor YAML (allowed: a DeepSpeed JSON, adapter_config.json, an "
            "accelerate config YAML)",
        ) from None


def _accelerate(data: dict[str, Any], name: str, given: dict[str, Any]) -> dict[str, Any]:
    plan = acc_emit.read(data, name)
    values: dict[str, Any] = {
        "gpus": plan.gpus,
        "gpus_per_node": plan.gpus_per_node,
        "dp": None,
        "nodes": None,
        "cluster_id": None,
        "tp": 1,
        "pp": 1,
        "cp": 1,
        "ep": 1,
        "sequence_parallel": False,
        "fsdp": plan.fsdp,
        "zero": plan.zero,
        "precision": _precision(plan, given["precision"]),
    }
    values |= dict(
        zip(("offload", "offload_target"), _offload(plan.offload_optimizer, plan.offload_params), strict=True)
    )
    if values["offload_target"] is None:
        values["offload_target"] = given["offload_target"]
    if plan.grad_accum is not None:
        values["grad_accum"] = plan.grad_accum
    if plan.recompute_full is not None:
        values["recompute"] = Recompute.FULL if plan.recompute_full else Recompute.NONE
    if plan.deepspeed:
        layout = Layout(dp=plan.gpus, zero=ZeroStage(plan.zero), stack=given["stack"])
        mismatch = acc_emit.size_mismatch(load_model(given["model"]), layout)
        if mismatch is not None:
            raise read_error(
                name,
                "deepspeed_config.zero_stage",
                f"inline DeepSpeed keys run DeepSpeed's default ZeRO sizes ({mismatch[0]} {mismatch[2]:,}), "
                f"stack {given['stack'].value} plans {mismatch[1]:,} (allowed: --stack deepspeed)",
            )
    return values


def _precision(plan: acc_emit.AcceleratePlan, given: Precision) -> Precision:
    """accelerate's mixed_precision as the plan's precision: DeepSpeed's 16-bit engines under DeepSpeed; else
    autocast over the model's weights, pure bf16 when the options say so (the script's load dtype)."""
    if plan.deepspeed:
        return {"bf16": Precision.BF16_MIXED, "fp16": Precision.FP16_MIXED}.get(
            plan.mixed_precision, Precision.FP32
        )
    if plan.mixed_precision == "bf16":
        return given if given in (Precision.BF16, Precision.AMP_BF16) else Precision.AMP_BF16
    return Precision.FP16 if plan.mixed_precision == "fp16" else Precision.FP32


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
