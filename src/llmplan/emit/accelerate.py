"""The accelerate config YAML of a training plan (`accelerate launch --config_file`), and the reverse.

Keys are those of accelerate's `ClusterConfig` (accelerate/commands/config/config_args.py) and, inside
`fsdp_config` / `deepspeed_config`, the `accelerate launch` options they stand for (commands/launch.py
`_validate_launch_command` copies `fsdp_config.x` to `args.x`); every value the estimate depends on is written:
- `distributed_type`: FSDP for an FSDP plan, DEEPSPEED for a ZeRO plan (or the deepspeed stack), MULTI_GPU for
  plain data parallelism, NO on one GPU; `num_processes` = the GPUs, `num_machines` = the nodes;
- `mixed_precision`: accelerate's bf16 / fp16 is autocast over the model's weights, so under FSDP / DDP it is
  the plan's amp-bf16 (fp32 weights) or pure bf16 / fp16 (the script loads the model in that dtype), and `no`
  for fp32; under DeepSpeed it enables DeepSpeed's bf16 / fp16 engine (bf16-mixed / fp16-mixed, as the JSON);
- FSDP (version 1, accelerate's `FullyShardedDataParallelPlugin`): `fsdp_sharding_strategy`,
  `fsdp_offload_params` (FSDP's CPUOffload moves parameters, gradients and the optimizer step together),
  `fsdp_backward_prefetch` BACKWARD_PRE (the stack's one unit gathered ahead), `fsdp_forward_prefetch` false,
  `fsdp_activation_checkpointing` (full recompute), transformer-layer wrapping;
- DeepSpeed: `zero_stage`, `offload_optimizer_device`, `offload_param_device` (+ NVMe paths),
  `gradient_accumulation_steps`, `zero3_init_flag`. Without a `deepspeed_config_file` accelerate's plugin
  writes no ZeRO size, so DeepSpeed runs its own defaults: a plan whose stack resolves other sizes (the
  Trainer's "auto" h² rules under ZeRO-3) is refused — emit `deepspeed` for those.
The micro-batch, the recompute of non-FSDP plans and the optimizer are the script's: the launch command passes
them as transformers Trainer flags (`llmplan.emit.trainer`).

Refused (EmitError naming the setting): tp / pp / cp / ep > 1, a stack that is not accelerate's, offload of
optimizer offload or NVMe under FSDP (FSDP's CPU offload is `--offload params`), selective recompute, precisions accelerate does not
run (bf16-mixed / fp16-mixed outside DeepSpeed: plan them as amp-bf16), and DeepSpeed's own refusals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llmplan.emit import EmitError, LaunchConfig, read_error, trainer
from llmplan.emit import deepspeed as ds
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    OffloadTarget,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
    ZeroStage,
)
from llmplan.stacks import resolve

TARGET = "accelerate"
STACKS = (
    Stack.HF_TRAINER,
    Stack.FSDP_ACCELERATE,
    Stack.LLAMA_FACTORY,
    Stack.AXOLOTL,
    Stack.UNSLOTH,
    Stack.DEEPSPEED,
)
"""Stacks that run under `accelerate launch` (the Trainer's and accelerate's own; deepspeed through its plugin)."""
MAIN_PROCESS_IP = "main-node"
"""Placeholder for the first node's address on multi-node plans (edit it; it changes no estimate)."""
MAIN_PROCESS_PORT = 29500

_FSDP_STRATEGIES = {
    FsdpStrategy.FULL_SHARD: "FULL_SHARD",
    FsdpStrategy.SHARD_GRAD_OP: "SHARD_GRAD_OP",
    FsdpStrategy.HYBRID_SHARD: "HYBRID_SHARD",
    FsdpStrategy.NO_SHARD: "NO_SHARD",
}
"""Plan strategy -> accelerate `fsdp_sharding_strategy` (torch ShardingStrategy names)."""
_AUTOCAST = {Precision.AMP_BF16: "bf16", Precision.BF16: "bf16", Precision.FP16: "fp16", Precision.FP32: "no"}
"""Plan precision -> accelerate `mixed_precision` outside DeepSpeed (autocast over the model's weights)."""
_DEEPSPEED = {Precision.BF16_MIXED: "bf16", Precision.FP16_MIXED: "fp16", Precision.FP32: "no"}
"""Plan precision -> `mixed_precision` under DeepSpeed (its 16-bit engines keep fp32 master weights)."""
_DS_SIZES = (
    "ds_reduce_bucket_elems",
    "ds_prefetch_elems",
    "ds_persistence_threshold_elems",
    "ds_max_live_elems",
    "ds_max_reuse_elems",
    "ds_sub_group_elems",
)


def _refuse(setting: str, message: str) -> EmitError:
    return EmitError(TARGET, setting, message)


def uses_deepspeed(layout: Layout) -> bool:
    return layout.zero is not ZeroStage.NONE or layout.stack is Stack.DEEPSPEED


def check(spec: ModelSpec, job: TrainingJob, layout: Layout) -> None:
    """EmitError for the first setting an accelerate config cannot express (module docstring)."""
    if layout.stack not in STACKS:
        allowed = ", ".join(s.value for s in STACKS)
        raise _refuse("stack", f"{layout.stack.value} is not run by accelerate launch (allowed: {allowed})")
    for name in ("tp", "pp", "cp", "ep"):
        if getattr(layout, name) > 1:
            raise _refuse(
                name,
                f"{getattr(layout, name)} is not set by an accelerate config llmplan writes (allowed: 1: "
                "accelerate's FSDP and DeepSpeed plugins shard data-parallel only here)",
            )
    if job.recompute is Recompute.SELECTIVE:
        raise _refuse(
            "recompute", "selective recomputation is not an accelerate setting (allowed: none, full)"
        )
    if uses_deepspeed(layout):
        _check_deepspeed(spec, job, layout)
        return
    if job.precision not in _AUTOCAST:
        raise _refuse(
            "precision",
            f"{job.precision.value}: accelerate's mixed precision is autocast over the model's weights "
            f"(allowed without DeepSpeed: {', '.join(p.value for p in _AUTOCAST)})",
        )
    opt, par = layout.offload_optimizer, layout.offload_params
    if opt is not OffloadTarget.NONE or par not in (OffloadTarget.NONE, OffloadTarget.CPU):
        raise _refuse(
            "offload",
            f"optimizer {opt.value}, parameters {par.value}: FSDP's CPU offload (fsdp_offload_params) moves "
            "parameters, gradients and the optimizer step to host RAM (allowed: --offload params "
            "--offload-target cpu with --fsdp)",
        )


def _check_deepspeed(spec: ModelSpec, job: TrainingJob, layout: Layout) -> None:
    try:
        ds.check(job, layout)
    except EmitError as exc:
        raise _refuse(exc.setting, str(exc).split(": ", 2)[2]) from None
    mismatch = size_mismatch(spec, layout)
    if mismatch is not None:
        name, own, plugin = mismatch
        raise _refuse(
            "stack",
            f"{layout.stack.value}'s ZeRO sizes ({name} {own:,}) are the 'auto' values of a DeepSpeed JSON; "
            f"accelerate's plugin without a deepspeed_config_file runs DeepSpeed's defaults ({plugin:,}) "
            "(allowed: --stack deepspeed, or emit deepspeed and launch with it)",
        )


def size_mismatch(spec: ModelSpec, layout: Layout) -> tuple[str, int, int] | None:
    """The first ZeRO size in which `layout.stack` differs from DeepSpeed's own defaults (what accelerate's
    inline plugin runs): (name, the stack's, DeepSpeed's), or None."""
    own = resolve(layout, spec.hidden_size)
    plugin = resolve(dataclasses.replace(layout, stack=Stack.DEEPSPEED), spec.hidden_size)
    for name in _DS_SIZES:
        used = layout.zero is ZeroStage.PARAMETERS or name == "ds_reduce_bucket_elems"
        if used and layout.zero is not ZeroStage.NONE and getattr(own, name) != getattr(plugin, name):
            return name[3:], getattr(own, name), getattr(plugin, name)
    return None


def config(spec: ModelSpec, job: TrainingJob, layout: Layout, gpus_per_node: int) -> dict[str, Any]:
    """The accelerate config dict of the plan (module docstring for where each key comes from)."""
    check(spec, job, layout)
    gpus = layout.num_gpus
    machines = gpus // min(gpus, gpus_per_node)
    if uses_deepspeed(layout):
        kind, precision = "DEEPSPEED", _DEEPSPEED[job.precision]
    else:
        kind = "FSDP" if layout.fsdp is not None else "MULTI_GPU" if gpus > 1 else "NO"
        precision = _AUTOCAST[job.precision]
    out: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": kind,
        "mixed_precision": precision,
        "num_processes": gpus,
        "num_machines": machines,
        "machine_rank": 0,
        "use_cpu": False,
        "debug": False,
        "downcast_bf16": "no",
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
    }
    if machines > 1:
        out |= {"main_process_ip": MAIN_PROCESS_IP, "main_process_port": MAIN_PROCESS_PORT}
    if kind == "FSDP":
        out["fsdp_config"] = _fsdp(job, layout)
    if kind == "DEEPSPEED":
        out["deepspeed_config"] = _deepspeed(job, layout, machines)
    return out


def _fsdp(job: TrainingJob, layout: Layout) -> dict[str, Any]:
    assert layout.fsdp is not None
    if resolve(layout, 1).fsdp_prefetch_units != 1:
        raise _refuse("stack", f"{layout.stack.value} prefetches more than one FSDP unit (allowed: one)")
    return {
        "fsdp_version": 1,
        "fsdp_sharding_strategy": _FSDP_STRATEGIES[layout.fsdp],
        "fsdp_offload_params": layout.offload_params is OffloadTarget.CPU,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_backward_prefetch": "BACKWARD_PRE",
        "fsdp_forward_prefetch": False,
        "fsdp_activation_checkpointing": job.recompute is Recompute.FULL,
        "fsdp_use_orig_params": True,
        "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_sync_module_states": True,
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
    }


def _deepspeed(job: TrainingJob, layout: Layout, machines: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "zero_stage": int(layout.zero),
        "gradient_accumulation_steps": job.grad_accum_steps,
        "offload_optimizer_device": layout.offload_optimizer.value,
        "offload_param_device": layout.offload_params.value,
        "zero3_init_flag": layout.zero is ZeroStage.PARAMETERS,
        "zero3_save_16bit_model": False,
    }
    if layout.offload_optimizer is OffloadTarget.NVME:
        out["offload_optimizer_nvme_path"] = ds.NVME_PATH
    if layout.offload_params is OffloadTarget.NVME:
        out["offload_param_nvme_path"] = ds.NVME_PATH
    if machines > 1:
        out["deepspeed_multinode_launcher"] = "standard"
    return out


def launch(
    spec: ModelSpec, job: TrainingJob, layout: Layout, gpus_per_node: int, header: str
) -> LaunchConfig:
    """The YAML text (after `header`, comment lines) and the `accelerate launch` command with the Trainer
    flags of the plan (`torchrun --nproc_per_node N train.py` with the same flags runs the DDP plans)."""
    data = config(spec, job, layout, gpus_per_node)
    filename = "accelerate.yaml"
    words = ["accelerate", "launch", "--config_file", filename]
    if data["num_machines"] > 1:
        words += ["--machine_rank", "NODE_RANK"]
    recompute_flag = (
        data["distributed_type"] != "FSDP"
    )  # FSDP checkpoints through fsdp_activation_checkpointing
    flags = trainer.flags(job, recompute=recompute_flag, target=TARGET)
    return LaunchConfig(TARGET, filename, header + trainer.yaml_text(data), trainer.command(words, flags))


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceleratePlan:
    """What an accelerate config sets of a plan, as `llmplan train` option values (None: not said)."""

    gpus: int
    gpus_per_node: int
    fsdp: FsdpStrategy | None
    zero: int
    offload_optimizer: OffloadTarget
    offload_params: OffloadTarget
    mixed_precision: str
    deepspeed: bool
    grad_accum: int | None
    recompute_full: bool | None


def read(data: object, path: str) -> AcceleratePlan:
    """The plan fields of an accelerate config; SpecError naming the key that cannot be read."""
    if not isinstance(data, dict):
        raise read_error(path, "(top level)", "is not a mapping (allowed: an accelerate config)")
    kind = data.get("distributed_type")
    kinds = ("NO", "MULTI_GPU", "FSDP", "DEEPSPEED")
    if kind not in kinds:
        raise read_error(path, "distributed_type", f"{kind!r} is not read (allowed: {', '.join(kinds)})")
    gpus = _int(data, "num_processes", path)
    machines = _int(data, "num_machines", path, default=1)
    if gpus % machines:
        raise read_error(path, "num_processes", f"{gpus} does not split over num_machines {machines}")
    precision = data.get("mixed_precision", "no")
    if precision not in ("no", "bf16", "fp16"):
        raise read_error(path, "mixed_precision", f"{precision!r} is not read (allowed: no, bf16, fp16)")
    fields: dict[str, Any] = {
        "gpus": gpus,
        "gpus_per_node": gpus // machines,
        "fsdp": None,
        "zero": 0,
        "offload_optimizer": OffloadTarget.NONE,
        "offload_params": OffloadTarget.NONE,
        "mixed_precision": precision,
        "deepspeed": kind == "DEEPSPEED",
        "grad_accum": None,
        "recompute_full": None,
    }
    if kind == "FSDP":
        fields |= _read_fsdp(_section(data, "fsdp_config", path), path)
    if kind == "DEEPSPEED":
        fields |= _read_deepspeed(_section(data, "deepspeed_config", path), path)
    return AcceleratePlan(**fields)


def _read_fsdp(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    names = {v: k for k, v in _FSDP_STRATEGIES.items()}
    strategy = cfg.get("fsdp_sharding_strategy", "FULL_SHARD")
    if strategy not in names:
        raise read_error(
            path,
            "fsdp_config.fsdp_sharding_strategy",
            f"{strategy!r} is not read (allowed: {', '.join(names)})",
        )
    version = cfg.get("fsdp_version", 1)
    if version != 1:
        raise read_error(path, "fsdp_config.fsdp_version", f"{version!r} is not read (allowed: 1)")
    offload = _bool(cfg, "fsdp_offload_params", path)
    return {
        "fsdp": names[strategy],
        "offload_params": OffloadTarget.CPU if offload else OffloadTarget.NONE,
        "recompute_full": _bool(cfg, "fsdp_activation_checkpointing", path),
    }


def _read_deepspeed(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    if "deepspeed_config_file" in cfg:
        raise read_error(
            path,
            "deepspeed_config.deepspeed_config_file",
            "names a DeepSpeed JSON: read that file with --from instead (allowed: the inline keys)",
        )
    stage = cfg.get("zero_stage", 2)
    if stage not in (0, 1, 2, 3) or isinstance(stage, bool):
        raise read_error(path, "deepspeed_config.zero_stage", f"{stage!r} is not a ZeRO stage (allowed: 0-3)")
    return {
        "zero": stage,
        "grad_accum": _int(cfg, "gradient_accumulation_steps", path, default=1, prefix="deepspeed_config."),
        "offload_optimizer": _device(cfg, "offload_optimizer_device", path),
        "offload_params": _device(cfg, "offload_param_device", path),
    }


def _int(data: dict[str, Any], key: str, path: str, default: int | None = None, prefix: str = "") -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise read_error(path, prefix + key, f"{value!r} is not an integer >= 1")
    return value


def _bool(cfg: dict[str, Any], key: str, path: str) -> bool:
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        raise read_error(path, f"fsdp_config.{key}", f"{value!r} is not true or false")
    return value


def _section(data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise read_error(path, key, f"{value!r} is not a mapping")
    return value


def _device(cfg: dict[str, Any], key: str, path: str) -> OffloadTarget:
    device = cfg.get(key, "none")
    try:
        return OffloadTarget(device)
    except ValueError:
        raise read_error(
            path, f"deepspeed_config.{key}", f"{device!r} is not an offload device (allowed: none, cpu, nvme)"
        ) from None
