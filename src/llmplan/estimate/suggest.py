"""When a training job does not fit: single changes that make it fit, each re-estimated, never guessed.

The ladder (in this order, cheapest in speed or quality first): chunked cross-entropy, fused optimizer, 8-bit
optimizer, selective then full recomputation, micro-batch halving (grad accumulation doubled: same global
batch), ZeRO-1/2/3 over every GPU of the cluster, ZeRO-Offload of the optimizer, LoRA (all linears, r 16),
QLoRA, more tensor parallelism within a node. A candidate that is invalid for the model or cluster is
skipped; those that fit are returned with the bytes they save against the original estimate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from llmplan.errors import LlmplanError
from llmplan.estimate.training import TrainingEstimate, estimate_training
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Recompute,
    TrainingJob,
    ZeroStage,
)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One change, its CLI spelling and what it does to the device bytes of the busiest GPU."""

    change: str
    """CLI options that make the change ("--recompute full")."""
    device_bytes: int
    saved_bytes: int
    """Original device bytes - new device bytes."""
    gpus: int
    """GPUs the changed layout uses."""

    @property
    def total(self) -> int:
        return self.device_bytes


def _candidates(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster
) -> Iterator[tuple[str, TrainingJob, Layout, Cluster]]:
    if not job.chunked_ce:
        yield "--chunked-ce", replace(job, chunked_ce=True), layout, cluster
    if job.optimizer_impl is OptimizerImpl.FOREACH:
        yield "--optimizer-impl fused", replace(job, optimizer_impl=OptimizerImpl.FUSED), layout, cluster
    if (
        job.optimizer in (Optimizer.ADAMW, Optimizer.PAGED_ADAMW)
        and layout.offload_optimizer is OffloadTarget.NONE
    ):
        yield "--optimizer adamw8bit", replace(job, optimizer=Optimizer.ADAM8BIT), layout, cluster
    for level in (Recompute.SELECTIVE, Recompute.FULL):
        if list(Recompute).index(level) > list(Recompute).index(job.recompute):
            yield f"--recompute {level.value}", replace(job, recompute=level), layout, cluster
    if job.micro_batch_size > 1:
        mb = job.micro_batch_size // 2
        accum = job.grad_accum_steps * job.micro_batch_size // mb
        changed = replace(job, micro_batch_size=mb, grad_accum_steps=accum)
        yield f"--micro-batch {mb} --grad-accum {accum}", changed, layout, cluster
    gpus = cluster.num_gpus
    if layout.fsdp is None:
        dp = gpus // (layout.tp * layout.pp * layout.cp)
        for stage in (ZeroStage.OPTIMIZER, ZeroStage.GRADIENTS, ZeroStage.PARAMETERS):
            if stage > layout.zero and dp > 1:
                yield f"--zero {stage.value} --gpus {gpus}", job, replace(layout, dp=dp, zero=stage), cluster
        if layout.offload_optimizer is OffloadTarget.NONE:
            zero = max(layout.zero, ZeroStage.GRADIENTS)
            offload = replace(layout, zero=zero, offload_optimizer=OffloadTarget.CPU)
            yield f"--zero {zero.value} --offload optimizer", job, offload, cluster
    lora = PeftSpec(lora_rank=16, lora_alpha=32, lora_targets=("all-linear",))
    if job.method is Method.FULL:
        yield (
            "--method lora --lora-rank 16 --lora-targets all-linear",
            replace(job, method=Method.LORA, peft=lora),
            layout,
            cluster,
        )
    if job.method in (Method.FULL, Method.LORA):
        peft = job.peft if job.method is Method.LORA else lora
        yield "--method qlora", replace(job, method=Method.QLORA, peft=peft), layout, cluster
    tp = layout.tp * 2
    while tp <= cluster.gpus_per_node:
        bigger = replace(layout, tp=tp, sequence_parallel=layout.sequence_parallel)
        need = bigger.num_gpus
        per_node = min(cluster.gpus_per_node, need)
        grown = replace(cluster, gpus_per_node=per_node, nodes=max(1, need // per_node))
        yield f"--tp {tp} --gpus {need}", job, bigger, grown
        tp *= 2


def suggest(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    cluster: Cluster,
    *,
    baseline: TrainingEstimate | None = None,
) -> tuple[Suggestion, ...]:
    """The single changes under which the job fits, in ladder order (empty when it fits already)."""
    base = baseline or estimate_training(model, job, layout, cluster)
    if base.fits:
        return ()
    out = []
    for change, j, lay, clu in _candidates(model, job, layout, cluster):
        try:
            est = estimate_training(model, j, lay, clu)
        except LlmplanError:
            continue
        if est.fits:
            out.append(
                Suggestion(
                    change=change,
                    device_bytes=est.device_bytes,
                    saved_bytes=base.device_bytes - est.device_bytes,
                    gpus=lay.num_gpus,
                )
            )
    return tuple(out)
