"""What the launch configs share: the transformers Trainer flags of a plan, the comment header, YAML text.

The Trainer flags (transformers training_args.py `TrainingArguments`) carry what a launcher config does not:
`--per_device_train_batch_size`, `--gradient_accumulation_steps`, `--bf16` / `--fp16`,
`--gradient_checkpointing` (whole-layer recompute) and `--optim` (the optimizer and its implementation:
`adamw_torch` is torch.optim.AdamW with its CUDA default foreach, `adamw_torch_fused` the fused kernel,
bitsandbytes' 8-bit and paged AdamW, Adafactor, SGD, Lion; trainer.py `get_optimizer_cls_and_kwargs`).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from llmplan.emit import EmitError
from llmplan.estimate.training import TrainingEstimate
from llmplan.specs.training import Method, Optimizer, OptimizerImpl, Precision, Recompute, TrainingJob
from llmplan.units import GIB

OPTIM = {
    (Optimizer.ADAMW, OptimizerImpl.FOREACH): "adamw_torch",
    (Optimizer.ADAMW, OptimizerImpl.FUSED): "adamw_torch_fused",
    (Optimizer.ADAM8BIT, OptimizerImpl.FOREACH): "adamw_bnb_8bit",
    (Optimizer.PAGED_ADAMW, OptimizerImpl.FOREACH): "paged_adamw_32bit",
    (Optimizer.PAGED_ADAMW_8BIT, OptimizerImpl.FOREACH): "paged_adamw_8bit",
    (Optimizer.ADAFACTOR, OptimizerImpl.FOREACH): "adafactor",
    (Optimizer.SGD, OptimizerImpl.FOREACH): "sgd",
    (Optimizer.LION, OptimizerImpl.FOREACH): "lion_32bit",
}
"""(optimizer, implementation) -> the Trainer's `optim` name (transformers OptimizerNames)."""
_HALF = {
    Precision.BF16: "bf16",
    Precision.AMP_BF16: "bf16",
    Precision.BF16_MIXED: "bf16",
    Precision.FP16: "fp16",
    Precision.FP16_MIXED: "fp16",
}


def optim(job: TrainingJob, target: str) -> str:
    """The Trainer's `optim` for the plan; EmitError naming the optimizer when none matches."""
    key = (job.optimizer, job.optimizer_impl)
    if key not in OPTIM:
        allowed = ", ".join(f"{o.value}/{i.value}" for o, i in OPTIM)
        raise EmitError(
            target,
            "optimizer",
            f"{job.optimizer.value} with {job.optimizer_impl.value} is not a Trainer optim (allowed: {allowed})",
        )
    return OPTIM[key]


def flags(job: TrainingJob, *, recompute: bool, target: str) -> list[str]:
    """The Trainer flags of the plan; `recompute` False when the launcher config checkpoints itself. Under
    DeepSpeed without an optimizer section the Trainer still builds the optimizer that `--optim` names."""
    out = [
        "--per_device_train_batch_size",
        str(job.micro_batch_size),
        "--gradient_accumulation_steps",
        str(job.grad_accum_steps),
        "--optim",
        optim(job, target),
    ]
    if job.precision in _HALF:
        out.append(f"--{_HALF[job.precision]}")
    if recompute and job.recompute is Recompute.FULL:
        out.append("--gradient_checkpointing")
    return out


def command(words: list[str], trainer_flags: list[str]) -> str:
    """One shell line: the launcher words, the user's `train.py`, the Trainer flags."""
    return shlex.join([*words, "train.py", *trainer_flags])


def header(lines: list[str]) -> str:
    """YAML / TOML / shell comment lines."""
    return "".join(f"# {line}\n" for line in lines)


def yaml_text(data: dict[str, Any], indent: str = "") -> str:
    """Block YAML of nested mappings of str / int / float / bool; strings double-quoted (JSON strings are YAML
    strings, and `no` stays a string rather than YAML 1.1's false)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key}:\n" + yaml_text(value, indent + "  "))
        else:
            out.append(f"{indent}{key}: {json.dumps(value)}\n")
    return "".join(out)


def plan_lines(est: TrainingEstimate) -> list[str]:
    """The comment header of a config: the plan's estimate and every input it assumed."""
    job, lay, p = est.job, est.layout, est.job.peft
    verdict = "fits" if est.fits else "DOES NOT FIT"
    lora = job.method in (Method.LORA, Method.QLORA, Method.DORA)
    return [
        f"llmplan plan: {est.model} on {lay.num_gpus} × {est.accelerator}, {est.device_bytes / GIB:.2f} GiB per "
        f"GPU of {est.capacity_bytes / GIB:.2f} ({verdict}), {est.trainable_params:,} trainable parameters",
        f"job: method {job.method.value}, precision {job.precision.value}, optimizer {job.optimizer.value} "
        f"({job.optimizer_impl.value}), micro-batch {job.micro_batch_size}, seq {job.seq_len}, grad-accum "
        f"{job.grad_accum_steps}, recompute {job.recompute.value}",
        f"peft: r {p.lora_rank}, alpha {p.lora_alpha:g}, targets {','.join(p.lora_targets)}, dropout "
        f"{p.lora_dropout:g}"
        if lora
        else "peft: none",
        f"layout: dp {lay.dp}, tp {lay.tp}, pp {lay.pp}, cp {lay.cp}, ep {lay.ep}, zero {int(lay.zero)}, fsdp "
        f"{lay.fsdp.value if lay.fsdp else 'none'}, offload optimizer {lay.offload_optimizer.value} / params "
        f"{lay.offload_params.value}, stack {lay.stack.value}",
    ]
