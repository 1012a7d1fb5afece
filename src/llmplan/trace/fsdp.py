"""FSDP full shard (ZeRO-3) simulated for N ranks on one CPU: rank 0 of a fake process group.

PyTorch's "fake" backend (`torch.testing._internal.distributed.fake_pg.FakeStore`, registered by
`torch.distributed._tools.fake_collectives`) completes every collective without moving data, so rank 0 runs the
real FSDP2 code path (`torch.distributed.fsdp.fully_shard`): its sharded parameters, gradients and optimizer
states are 1/N of each tensor (dim-0 shards, padded to a multiple of N), and each decoder layer's parameters
are all-gathered before its forward and its backward and freed after (`reshard_after_forward=True`), through
the storage resizes the tracker follows. Each decoder layer is one FSDP unit and the root holds the
embeddings, the final norm and the head, as torchtitan and accelerate wrap Llama models.

The optimizer runs one parameter at a time (`foreach=False`): the multi-tensor kernels over DTensors leave
global-shape tensors alive on fake tensors (DTensor's sharding propagation runs in the caller's fake mode), so
they are refused rather than traced wrongly. The per-parameter loop's events grow with the parameter count,
so the whole model is traced (no composition).

Mixed precision (`bf16-mixed`, `fp16-mixed`) is FSDP2's `MixedPrecisionPolicy(param_dtype=16-bit,
reduce_dtype=fp32)`: the sharded fp32 parameters are the optimizer's master weights (reported as weights) and
the 16-bit unsharded copies live only while their unit runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmplan.errors import LlmplanError
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Method, OptimizerImpl, Precision, TrainingJob
from llmplan.trace import build, compose
from llmplan.trace.result import TraceResult

MAX_RANKS = 64


def trace_fsdp(spec: ModelSpec, job: TrainingJob, *, ranks: int, compose_layers: bool = True) -> TraceResult:
    """Peak memory of rank 0 of `ranks` FSDP full-shard ranks, one training step of `job`."""
    if not 2 <= ranks <= MAX_RANKS:
        raise LlmplanError(f"dp: {ranks} ranks cannot be simulated (allowed: 2 to {MAX_RANKS})")
    if job.method not in (Method.FULL, Method.LORA, Method.FREEZE):
        raise LlmplanError(
            f"method: {job.method.value} is not traced under FSDP (allowed: full, lora, freeze)"
        )
    if job.optimizer_impl in (OptimizerImpl.FOREACH, OptimizerImpl.FUSED):
        raise LlmplanError(
            f"optimizer_impl: {job.optimizer_impl.value} is not traced under FSDP: PyTorch's multi-tensor "
            "optimizer kernels over DTensors leave global-shape tensors behind on fake tensors, which a GPU "
            "would not hold; trace --optimizer-impl for-loop (same model states, per-parameter temporaries)"
        )
    torch = build.require("torch")
    dist = build.require("torch.distributed")
    build.require("torch.distributed._tools.fake_collectives")
    fake_pg = build.require("torch.testing._internal.distributed.fake_pg")
    fsdp = build.require("torch.distributed.fsdp")
    mesh_mod = build.require("torch.distributed.device_mesh")
    mixed = job.precision in (Precision.BF16_MIXED, Precision.FP16_MIXED)
    step_job = replace(job, precision=Precision.FP32) if mixed else job
    policy = None
    if mixed:
        low = torch.bfloat16 if job.precision is Precision.BF16_MIXED else torch.float16
        policy = fsdp.MixedPrecisionPolicy(param_dtype=low, reduce_dtype=torch.float32)
    if dist.is_initialized():
        raise LlmplanError("dp: a torch.distributed process group is already running in this process")
    dist.init_process_group("fake", store=fake_pg.FakeStore(), rank=0, world_size=ranks)
    try:
        mesh = mesh_mod.init_device_mesh("cpu", (ranks,))

        def wrap(model: Any) -> Any:
            kwargs: dict[str, Any] = {"mesh": mesh}
            if policy is not None:
                kwargs["mp_policy"] = policy
            for layer in build.decoder_layers(model):
                fsdp.fully_shard(layer, **kwargs)
            fsdp.fully_shard(model, **kwargs)
            return model

        def runner(spec_: ModelSpec, work: Any, num_layers: int) -> compose.RawTrace:
            return compose.run_trace(spec_, work, num_layers, wrap=wrap)

        result = compose.trace_with(spec, step_job, runner, compose_layers=compose_layers, ranks=ranks)
    finally:
        dist.destroy_process_group()
    notes = result.notes
    if mixed:
        notes += ("FSDP mixed precision: the sharded fp32 parameters (weights) are the master weights",)
    return replace(result, notes=notes)
