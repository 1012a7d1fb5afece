"""One-line descriptions of the validation cases and the number formats of the accuracy page."""

from __future__ import annotations

from llmplan.formulas.peft import LORA_FAMILY
from llmplan.specs.training import Layout, Method, TrainingJob
from llmplan.units import GIB
from llmplan.validate.measured import InferenceSetting, MeasuredCase


def gib(nbytes: int | None) -> str:
    """Bytes as GiB (2^30) with two decimals, or a dash when missing."""
    return "—" if nbytes is None else f"{nbytes / GIB:.2f}"


def pct(value: float | None) -> str:
    """A signed percentage with one decimal, or a dash when missing."""
    return "—" if value is None else f"{value:+.1f} %"


def describe_training(job: TrainingJob, layout: Layout) -> str:
    """A one-line job description: method, precision, batch x seq, attention, recompute, layout."""
    parts = [job.method.value]
    if job.method is not Method.FULL and job.method is not Method.FREEZE:
        peft = job.peft
        if job.method in LORA_FAMILY:
            parts.append(f"r{peft.lora_rank} {'+'.join(peft.lora_targets)}")
        elif job.method in (Method.PREFIX, Method.PROMPT, Method.PTUNING, Method.PTUNING_V2):
            parts.append(f"{peft.num_virtual_tokens} virtual tokens")
    parts += [job.precision.value, f"b{job.micro_batch_size} s{job.seq_len}", job.attention.value]
    if job.recompute.value != "none":
        parts.append(f"recompute {job.recompute.value}")
    if job.optimizer_impl.value != "foreach":
        parts.append(f"adamw {job.optimizer_impl.value}")
    if layout.num_gpus > 1 or layout.sharding_stage:
        shard = f"fsdp {layout.fsdp.value}" if layout.fsdp else f"zero {int(layout.zero)}"
        parts.append(f"{shard} dp{layout.dp}" + (f" tp{layout.tp}" if layout.tp > 1 else ""))
    if layout.offload_params.value != "none" or layout.offload_optimizer.value != "none":
        parts.append(f"offload params={layout.offload_params.value} opt={layout.offload_optimizer.value}")
    return ", ".join(parts)


def describe_inference(setting: InferenceSetting) -> str:
    return (
        f"infer {setting.weights}, b{setting.batch_size} prompt {setting.prompt_len} + {setting.new_tokens}, "
        f"{setting.attention.value}"
    )


def describe_case(case: MeasuredCase) -> str:
    if case.training is not None:
        return describe_training(case.training, case.layout)
    if case.inference is not None:
        return describe_inference(case.inference)
    return ""
