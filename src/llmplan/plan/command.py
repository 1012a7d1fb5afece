"""The `llmplan train ...` command that reproduces one planned layout's memory and time breakdown."""

from __future__ import annotations

import shlex

from llmplan.specs.training import (
    AttentionImpl,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PipelineSchedule,
    Precision,
    TrainingJob,
)


def train_command(model_ref: str, job: TrainingJob, layout: Layout, cluster_args: tuple[str, ...]) -> str:
    """`llmplan train MODEL <cluster_args> <job> <layout>`: every option that differs from train's default.

    `cluster_args` is what selects the same cluster in `llmplan train` (`--cluster ID --nodes N` or
    `--gpu ID --gpus N --gpus-per-node G`); the job's PEFT settings beyond the method are not searched and are
    left at their defaults."""
    args = ["llmplan", "train", model_ref, *cluster_args]
    if job.method is not Method.FULL:
        args += ["--method", job.method.value]
    if job.precision is not Precision.BF16_MIXED:
        args += ["--precision", job.precision.value]
    if job.optimizer is not Optimizer.ADAMW:
        args += ["--optimizer", job.optimizer.value]
    if job.optimizer_impl is not OptimizerImpl.FOREACH:
        args += ["--optimizer-impl", job.optimizer_impl.value]
    args += ["--seq-len", str(job.seq_len), "--micro-batch", str(job.micro_batch_size)]
    args += ["--grad-accum", str(job.grad_accum_steps), "--recompute", job.recompute.value]
    if job.attention is not AttentionImpl.SDPA:
        args += ["--attention", job.attention.value]
    if job.packing:
        args.append("--packing")
    if job.chunked_ce:
        args.append("--chunked-ce")
    args += ["--dp", str(layout.dp), "--tp", str(layout.tp), "--pp", str(layout.pp)]
    args += ["--cp", str(layout.cp), "--ep", str(layout.ep)]
    if layout.sequence_parallel:
        args.append("--sequence-parallel")
    if layout.fsdp is not None:
        args += ["--fsdp", layout.fsdp.value]
    else:
        args += ["--zero", str(int(layout.zero))]
    args += ["--stack", layout.stack.value]
    opt, par = layout.offload_optimizer, layout.offload_params
    if opt is not OffloadTarget.NONE or par is not OffloadTarget.NONE:
        what = "both" if opt is not OffloadTarget.NONE and par is not OffloadTarget.NONE else (
            "optimizer" if opt is not OffloadTarget.NONE else "params"
        )  # fmt: skip
        target = par if par is not OffloadTarget.NONE else opt
        args += ["--offload", what, "--offload-target", target.value]
    if layout.pp > 1 or layout.pp_schedule is not PipelineSchedule.ONE_F_ONE_B:
        args += ["--pp-schedule", layout.pp_schedule.value]
    if layout.pp_virtual_stages != 1:
        args += ["--virtual-stages", str(layout.pp_virtual_stages)]
    return shlex.join(args)
