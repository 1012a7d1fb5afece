"""The DeepSpeed JSON of a training plan, its launch command, and the reverse: a DeepSpeed JSON read back.

What each key comes from (docs/emit.md has the table):
- `train_micro_batch_size_per_gpu`, `gradient_accumulation_steps`: the job; `train_batch_size` = micro-batch ·
  accumulation · dp, which DeepSpeed asserts (deepspeed/runtime/config.py `_batch_assertion`, world size = the
  data-parallel size);
- `bf16` / `fp16`: the precision; DeepSpeed's 16-bit engines keep fp32 master weights in the optimizer, so only
  bf16-mixed / fp16-mixed (and fp32: neither enabled) are expressible;
- `zero_optimization`: the stage and its sizes from `llmplan.stacks.resolve` — the very numbers the estimate
  used (`reduce_bucket_size`; under ZeRO-3 `stage3_prefetch_bucket_size`, `stage3_param_persistence_threshold`,
  `stage3_max_live_parameters`, `stage3_max_reuse_distance`, `sub_group_size`); `offload_optimizer` /
  `offload_param` with their device and, on NVMe, the swap buffers;
- `optimizer`: AdamW with `torch_adam` (torch.optim.AdamW, foreach as the plan's implementation) or DeepSpeed's
  FusedAdam for the fused implementation (deepspeed/runtime/engine.py `get_optimizer_configuration`); other
  optimizers are the training script's and are not written;
- recompute: the transformers Trainer's `--gradient_checkpointing` (whole-layer recomputation) in the command.

Refused (EmitError naming the setting): FSDP, tensor / pipeline / context / expert parallelism and sequence
parallelism (a DeepSpeed JSON does not set them: Megatron-DeepSpeed or the model code does; pipeline parallelism
under ZeRO-2/3 DeepSpeed itself refuses, deepspeed/runtime/pipe/engine.py), pure 16-bit / autocast / fp8
precision, selective recompute, the optimizer step in backward, a stack that does not run DeepSpeed.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from llmplan.emit import EmitError, LaunchConfig, read_error
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    Layout,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
    ZeroStage,
)
from llmplan.stacks import StackSettings, defaults, resolve

TARGET = "deepspeed"
NVME_PATH = "/local_nvme"
"""Where the NVMe swap files go (`nvme_path`); a placeholder the user edits, it changes no estimate."""

_PRECISION_KEYS = {Precision.BF16_MIXED: "bf16", Precision.FP16_MIXED: "fp16", Precision.FP32: None}
"""Precision -> the DeepSpeed section that enables it (None: fp32, no 16-bit section)."""


def _refuse(setting: str, message: str) -> EmitError:
    return EmitError(TARGET, setting, message)


def check(job: TrainingJob, layout: Layout) -> None:
    """EmitError for the first setting of the plan a DeepSpeed JSON cannot express (module docstring)."""
    if defaults(layout.stack).deepspeed is None:
        raise _refuse(
            "stack",
            f"{layout.stack.value} does not run DeepSpeed (allowed: hf-trainer, deepspeed, llama-factory, "
            "axolotl, unsloth)",
        )
    if layout.fsdp is not None:
        raise _refuse("fsdp", f"{layout.fsdp.value} is FSDP, not ZeRO (emit accelerate for FSDP plans)")
    for name in ("tp", "pp", "cp", "ep"):
        degree = getattr(layout, name)
        if degree > 1:
            extra = (
                "; DeepSpeed's pipeline engine refuses ZeRO-2/3 besides"
                if name == "pp" and layout.zero >= ZeroStage.GRADIENTS
                else ""
            )
            raise _refuse(
                name,
                f"{degree} is not set by a DeepSpeed config (the model code or Megatron-DeepSpeed sets it"
                f"{extra}; allowed: 1, the data-parallel degree is the only one)",
            )
    if job.precision not in _PRECISION_KEYS:
        raise _refuse(
            "precision",
            f"{job.precision.value}: DeepSpeed's 16-bit engines keep fp32 master weights (allowed: bf16-mixed, "
            "fp16-mixed, fp32)",
        )
    if job.recompute is Recompute.SELECTIVE:
        raise _refuse("recompute", "selective recomputation is not a Trainer setting (allowed: none, full)")
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD:
        raise _refuse("optimizer_impl", "DeepSpeed steps after backward (allowed: foreach, fused, for-loop)")
    offloaded = (
        OffloadTarget.NONE is not layout.offload_optimizer or OffloadTarget.NONE is not layout.offload_params
    )
    if offloaded and layout.zero is ZeroStage.NONE:
        raise _refuse("offload", "ZeRO-Offload needs ZeRO stage 1, 2 or 3 (allowed: --zero 1-3)")


def config(spec: ModelSpec, job: TrainingJob, layout: Layout) -> dict[str, Any]:
    """The DeepSpeed config dict of the plan (module docstring for where each key comes from)."""
    check(job, layout)
    st = resolve(layout, spec.hidden_size)
    out: dict[str, Any] = {
        "train_batch_size": job.micro_batch_size * job.grad_accum_steps * layout.dp,
        "train_micro_batch_size_per_gpu": job.micro_batch_size,
        "gradient_accumulation_steps": job.grad_accum_steps,
    }
    for precision, key in _PRECISION_KEYS.items():
        if key is not None:
            out[key] = {"enabled": job.precision is precision}
    if job.optimizer is Optimizer.ADAMW:
        out["optimizer"] = {"type": "AdamW", "params": _adam_params(job.optimizer_impl)}
    out["zero_optimization"] = _zero(layout, st)
    return out


def _adam_params(impl: OptimizerImpl) -> dict[str, Any]:
    if impl is OptimizerImpl.FUSED:
        return {"torch_adam": False}
    return {"torch_adam": True, "foreach": impl is OptimizerImpl.FOREACH}


def _zero(layout: Layout, st: StackSettings) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": int(layout.zero)}
    if layout.zero is ZeroStage.NONE:
        return zero
    zero["reduce_bucket_size"] = st.ds_reduce_bucket_elems
    if layout.zero is ZeroStage.PARAMETERS:
        zero |= {
            "stage3_prefetch_bucket_size": st.ds_prefetch_elems,
            "stage3_param_persistence_threshold": st.ds_persistence_threshold_elems,
            "stage3_max_live_parameters": st.ds_max_live_elems,
            "stage3_max_reuse_distance": st.ds_max_reuse_elems,
            "sub_group_size": st.ds_sub_group_elems,
        }
    if layout.offload_optimizer is not OffloadTarget.NONE:
        zero["offload_optimizer"] = _offload(layout.offload_optimizer, st.ds_nvme_optimizer_buffers, None)
    if layout.offload_params is not OffloadTarget.NONE:
        zero["offload_param"] = _offload(
            layout.offload_params, st.ds_nvme_param_buffers, st.ds_nvme_param_buffer_elems
        )
    return zero


def _offload(target: OffloadTarget, buffers: int, buffer_elems: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"device": target.value}
    if target is OffloadTarget.NVME:
        out |= {"nvme_path": NVME_PATH, "buffer_count": buffers}
        if buffer_elems is not None:
            out["buffer_size"] = buffer_elems
    return out


def launch(
    spec: ModelSpec, job: TrainingJob, layout: Layout, gpus_per_node: int, filename: str = "ds_config.json"
) -> LaunchConfig:
    """The JSON text and the `deepspeed` launcher command (one line; `torchrun` works the same with
    --nproc_per_node / --nnodes). The training script is the user's; a Trainer script takes the flags shown."""
    data = config(spec, job, layout)
    gpus = layout.num_gpus
    per_node = min(gpus, gpus_per_node)
    words = ["deepspeed", "--num_nodes", str(gpus // per_node), "--num_gpus", str(per_node)]
    if gpus > per_node:
        words += ["--hostfile", "hostfile"]
    words += ["train.py", "--deepspeed", filename]
    if layout.stack is not Stack.DEEPSPEED:
        words += [
            "--per_device_train_batch_size",
            str(job.micro_batch_size),
            "--gradient_accumulation_steps",
            str(job.grad_accum_steps),
            f"--{_PRECISION_KEYS[job.precision] or 'fp32'}" if job.precision is not Precision.FP32 else "",
        ]
        words += ["--gradient_checkpointing"] if job.recompute is Recompute.FULL else []
    text = json.dumps(data, indent=2) + "\n"
    return LaunchConfig(TARGET, filename, text, shlex.join(w for w in words if w))


@dataclass(frozen=True, kw_only=True, slots=True)
class DeepSpeedPlan:
    """What a DeepSpeed JSON sets of a plan: `llmplan train` option values (None: the JSON does not say)."""

    micro_batch: int
    grad_accum: int
    dp: int
    zero: int
    precision: Precision
    offload_optimizer: OffloadTarget
    offload_params: OffloadTarget
    optimizer: Optimizer | None
    optimizer_impl: OptimizerImpl | None


def read(data: object, path: str) -> DeepSpeedPlan:
    """The plan fields of a DeepSpeed config (the JSON a user already has). SpecError naming the key that
    cannot be read: a missing batch size, "auto" (llmplan cannot resolve the Trainer's own arguments), a
    batch product that does not divide, both 16-bit sections enabled."""
    if not isinstance(data, dict):
        raise read_error(path, "(top level)", "is not a JSON object (allowed: a DeepSpeed config)")
    micro = _int(data, "train_micro_batch_size_per_gpu", path)
    accum = _int(data, "gradient_accumulation_steps", path, default=1)
    total = _int(data, "train_batch_size", path, default=micro * accum)
    if total % (micro * accum):
        raise read_error(
            path,
            "train_batch_size",
            f"{total} is not a multiple of micro-batch · accumulation = {micro}·{accum} (allowed: multiples)",
        )
    enabled = [k for k in ("bf16", "fp16") if _section(data, k, path).get("enabled") is True]
    if len(enabled) > 1:
        raise read_error(path, "fp16", "bf16 and fp16 are both enabled (allowed: one of them)")
    precision = {"bf16": Precision.BF16_MIXED, "fp16": Precision.FP16_MIXED}.get(
        enabled[0] if enabled else "", Precision.FP32
    )
    zero = _section(data, "zero_optimization", path)
    stage = zero.get("stage", 0)
    if stage not in (0, 1, 2, 3) or isinstance(stage, bool):
        raise read_error(path, "zero_optimization.stage", f"{stage!r} is not a ZeRO stage (allowed: 0-3)")
    optimizer, impl = _optimizer(data, path)
    return DeepSpeedPlan(
        micro_batch=micro,
        grad_accum=accum,
        dp=total // (micro * accum),
        zero=stage,
        precision=precision,
        offload_optimizer=_device(zero, "offload_optimizer", path),
        offload_params=_device(zero, "offload_param", path),
        optimizer=optimizer,
        optimizer_impl=impl,
    )


def check_sizes(data: dict[str, Any], path: str, spec: ModelSpec, layout: Layout) -> None:
    """SpecError naming the ZeRO size key whose value is neither "auto" nor the number `layout.stack` uses:
    the estimate runs with the stack's sizes (`llmplan.stacks`), so another number would be silently wrong."""
    expected = config(spec, TrainingJob(), layout)["zero_optimization"]
    given = data.get("zero_optimization", {})
    for key, value in expected.items():
        if key in ("stage", "offload_optimizer", "offload_param") or key not in given:
            continue
        if given[key] != "auto" and given[key] != value:
            raise read_error(
                path,
                f"zero_optimization.{key}",
                f"{given[key]!r} differs from stack {layout.stack.value}'s {value:,} that the estimate uses "
                '(allowed: that value, "auto", or --stack of a stack with this size)',
            )


def _int(data: dict[str, Any], key: str, path: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        raise read_error(path, key, "is missing (allowed: an integer >= 1)")
    if value == "auto":
        raise read_error(path, key, '"auto" is filled by the Trainer (allowed: the integer it resolves to)')
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise read_error(path, key, f"{value!r} is not an integer >= 1")
    return value


def _section(data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise read_error(path, key, f"{value!r} is not an object")
    return value


def _device(zero: dict[str, Any], key: str, path: str) -> OffloadTarget:
    section = zero.get(key) or {}
    if not isinstance(section, dict):
        raise read_error(path, f"zero_optimization.{key}", f"{section!r} is not an object")
    device = section.get("device", "none")
    try:
        return OffloadTarget(device)
    except ValueError:
        raise read_error(
            path,
            f"zero_optimization.{key}.device",
            f"{device!r} is not an offload device (allowed: none, cpu, nvme)",
        ) from None


def _optimizer(data: dict[str, Any], path: str) -> tuple[Optimizer | None, OptimizerImpl | None]:
    section = _section(data, "optimizer", path)
    if not section:
        return None, None
    kind = str(section.get("type", "")).lower()
    if kind not in ("adamw", "adam"):
        raise read_error(
            path, "optimizer.type", f"{section.get('type')!r} is not read (allowed: AdamW, or no optimizer)"
        )
    params = section.get("params", {})
    if not params.get("torch_adam", False):
        return Optimizer.ADAMW, OptimizerImpl.FUSED
    return Optimizer.ADAMW, OptimizerImpl.FOREACH if params.get("foreach", True) else OptimizerImpl.FOR_LOOP
