"""Seed 000's training-time rule next to llmplan's time model (the "Time" rows of docs/rules-of-thumb.md).

The seed (shared/seeds/000, "模型训练时间"): compute = 8 × parameters × tokens ("some sources say 6"); delivered
= one GPU's FLOP/s × GPUs × utilisation ("utilisation generally does not reach 50 %"); time = compute /
delivered. 6·N·D counts forward + backward (2 + 4 FLOPs per parameter and token), 8·N·D adds the rerun
forward of full recomputation (Narayanan et al. 2021, section 5.1).

llmplan's model (`estimate.time`) prices every GEMM by its shape, the attention kernel, the memory-bound ops,
each collective with its overlap, the pipeline bubble and the optimizer step; its MFU is an output, not an
input. The rows show the seed's arithmetic exactly, then the full model of the same run.
"""

from __future__ import annotations

from llmplan import catalog
from llmplan.estimate.cost import estimate_run
from llmplan.estimate.rules import RuleCase
from llmplan.estimate.time import estimate_time
from llmplan.formulas.params import count_params
from llmplan.loading import load_model
from llmplan.specs.training import AttentionImpl, FsdpStrategy, Layout, Recompute, TrainingJob

SEED_UTILISATION = 0.5
"""Seed 000: GPU utilisation "generally below 50 %", taken at its bound."""
TOKENS = 1e12
DAY_S = 86400.0


def seed_days(params: float, tokens: float, factor: int, peak_flops_per_s: float, gpus: int) -> float:
    """Seed 000's training time in days: factor · N · D / (peak · GPUs · SEED_UTILISATION)."""
    return factor * params * tokens / (peak_flops_per_s * gpus * SEED_UTILISATION) / DAY_S


def time_rules() -> tuple[RuleCase, ...]:
    """Llama-2-7B on 64 A100 80GB and on 64 H100, 10^12 tokens."""
    model = load_model("llama-2-7b")
    n = count_params(model).total
    rows: list[RuleCase] = []
    for preset, gpu in (("dgx-a100-80gb", "A100 80GB"), ("dgx-h100", "H100")):
        cluster = catalog.cluster(preset, nodes=8)
        peak = cluster.accelerator.peak_flops("bf16")
        for recompute, factor in ((Recompute.NONE, 6), (Recompute.FULL, 8)):
            rule = seed_days(n, TOKENS, factor, peak, 64)
            if recompute is Recompute.NONE:
                rows.append(
                    RuleCase(
                        "000",
                        "time = 6 · N · D / (peak × GPUs × 50 %)",
                        f"Llama-2-7B, 10^12 tokens, 64 {gpu}: the seed's arithmetic (days)",
                        rule,
                        seed_days(n, TOKENS, 6, peak, 64),
                        f"agrees exactly: 6 × {n / 1e9:.2f}e9 × 1e12 / ({peak / 1e12:.0f} TFLOP/s × 64 × 0.5)",
                        unit="days",
                    )
                )
            job = TrainingJob(
                micro_batch_size=4, seq_len=4096, recompute=recompute, attention=AttentionImpl.FLASH
            )
            est = estimate_time(model, job, Layout(dp=64, fsdp=FsdpStrategy.FULL_SHARD), cluster)
            timed, _ = estimate_run(est, tokens=TOKENS, gpus=64, acc=cluster.accelerator)
            assert timed.time_to_train_s is not None
            attention = est.step.value("compute.attention_s") / est.step_s
            memory = est.step.value("compute.memory_bound_s") / est.step_s
            rows.append(
                RuleCase(
                    "000",
                    f"time = {factor} · N · D / (peak × GPUs × 50 %)",
                    f"Llama-2-7B, 10^12 tokens, 64 {gpu}, FSDP, 4 × 4096 tokens per GPU, recompute "
                    f"{recompute.value}: llmplan's full model (days)",
                    rule,
                    timed.time_to_train_s / DAY_S,
                    f"llmplan's MFU is {est.mfu:.0%} (6N + 12·L·h·s; {est.mfu_causal:.0%} with the causal 6·L·h·s), "
                    f"HFU {est.hfu:.0%}, not 50 %: GEMMs run at "
                    f"the sustained fraction of the peak, the attention kernel takes {attention:.0%} of the step "
                    f"(the rule has no attention term), memory-bound ops {memory:.0%}, exposed communication "
                    f"{est.step.value('exposed_comm_s') / est.step_s:.0%}"
                    + ("; full recomputation costs one forward (8N)" if factor == 8 else ""),
                    unit="days",
                )
            )
    return tuple(rows)
