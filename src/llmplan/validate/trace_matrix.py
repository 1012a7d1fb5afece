"""The validation matrix of issue 4 item 4: the analytic engine against the trace on peak allocated memory.

Small but realistic models (hidden 512-1024, 2 layers, real vocabularies: the logits are the largest single
tensor of a training step) of nine architectures — Llama (MHA), Llama-3 shape (GQA, 128k vocabulary),
Qwen2 (GQA, q/k/v biases, tied head), Mistral (sliding window), Mixtral (MoE), Gemma 2 (sliding / global,
four norms, 256k vocabulary), GPT-2 (learned positions, LayerNorm, GELU), OPT and Phi-3 (fused projections) —
times jobs: full training in several precisions, LoRA, QLoRA, DoRA, IA3, prefix and prompt tuning, batch
sizes 1-4, sequence lengths 512-8192, recomputation none / selective / full, eager and sdpa attention, and
inference (prefill + decode). `FAST` marks the CI subset (about a dozen cases, one per architecture and
method family), the whole matrix is a benchmark.

Both engines are asked the same question: the per-GPU peak of the `allocated` counter on one GPU. Importing
this module needs no torch; running a case imports the trace engine lazily.
"""

from __future__ import annotations

__all__ = ["ARCHS", "CASES", "FAST", "TraceCase", "TraceComparison", "arch_model", "run_matrix"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from llmplan.specs.inference import InferenceJob
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    AdapterDtype,
    AttentionImpl,
    Method,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
)
from llmplan.validate.trace_archs import ARCHS, arch_model


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceCase:
    """One cell of the matrix: an architecture and a training or inference job."""

    id: str
    arch: str
    training: TrainingJob | None = None
    inference: InferenceJob | None = None
    fast: bool = False
    """In the CI subset (`llmplan validate --fast`)."""
    inference_attention: AttentionImpl = AttentionImpl.SDPA
    """The attention kernel of an inference case (InferenceJob has none: the trace needs it for Gemma 2)."""

    @property
    def kind(self) -> str:
        return "training" if self.training is not None else "inference"

    def model(self) -> ModelSpec:
        return arch_model(self.arch)


_BASE = TrainingJob(
    precision=Precision.BF16_MIXED,
    optimizer_impl=OptimizerImpl.FOREACH,
    micro_batch_size=1,
    seq_len=1024,
    attention=AttentionImpl.SDPA,
)
_LORA = PeftSpec(lora_rank=16, lora_alpha=32, lora_targets=("q_proj", "v_proj"))
_ALL_LINEAR = PeftSpec(lora_rank=16, lora_alpha=32, lora_targets=("all-linear",))
_BF16 = AdapterDtype.BF16
_EAGER_ONLY = {"gemma2"}
"""transformers 5.23 refuses sdpa for Gemma 2 (attention logit soft-capping needs the eager path)."""
_ATTN_TARGETS = {"gpt2": ("c_attn",), "phi3": ("qkv_proj",)}


def _lora(arch: str, peft: PeftSpec = _LORA) -> PeftSpec:
    """peft targets that exist in `arch` (GPT-2's fused c_attn, Phi-3's qkv_proj)."""
    if arch in _ATTN_TARGETS and peft.lora_targets != ("all-linear",):
        return replace(peft, lora_targets=_ATTN_TARGETS[arch])
    return peft


def _t(case_id: str, arch: str, *, fast: bool = False, peft: PeftSpec | None = None, **job: Any) -> TraceCase:
    method = job.get("method", Method.FULL)
    if peft is None and method not in (Method.FULL, Method.FREEZE):
        peft = _lora(arch)
    values = {**job, **({"peft": peft} if peft is not None else {})}
    if arch in _EAGER_ONLY:
        values["attention"] = AttentionImpl.EAGER
    return TraceCase(id=case_id, arch=arch, training=replace(_BASE, **values), fast=fast)


def _i(case_id: str, arch: str, *, fast: bool = False, **job: Any) -> TraceCase:
    values = {"context_len": 528, "prompt_len": 512, "batch": 1, **job}
    attention = AttentionImpl.EAGER if arch in _EAGER_ONLY else AttentionImpl.SDPA
    return TraceCase(
        id=case_id,
        arch=arch,
        inference=InferenceJob(**values, attention=attention),
        fast=fast,
        inference_attention=attention,
    )


def _cases() -> tuple[TraceCase, ...]:
    full, lora, qlora = Method.FULL, Method.LORA, Method.QLORA
    cases: list[TraceCase] = []
    for arch in ARCHS:
        fast_arch = arch in ("llama3-gqa", "qwen2", "mixtral", "gemma2", "gpt2", "phi3")
        cases += [
            _t(f"{arch}-full-s1024", arch, method=full, fast=arch in ("llama3-gqa", "mixtral", "gpt2")),
            _t(
                f"{arch}-lora-b2-s1024", arch, method=lora, micro_batch_size=2, fast=arch in ("qwen2", "phi3")
            ),
            _i(f"{arch}-infer-p512-d16", arch, fast=fast_arch and arch in ("llama3-gqa", "gemma2")),
        ]
    cases += [
        # recomputation
        _t(
            "llama-full-s2048-recompute-full",
            "llama",
            method=full,
            seq_len=2048,
            recompute=Recompute.FULL,
            fast=True,
        ),
        _t(
            "llama-full-s2048-recompute-selective",
            "llama",
            method=full,
            seq_len=2048,
            recompute=Recompute.SELECTIVE,
        ),
        _t(
            "mistral-full-s2048-recompute-selective",
            "mistral",
            method=full,
            seq_len=2048,
            recompute=Recompute.SELECTIVE,
        ),
        _t("qwen2-lora-s4096-recompute-full", "qwen2", method=lora, seq_len=4096, recompute=Recompute.FULL),
        _t(
            "mixtral-full-s2048-recompute-full",
            "mixtral",
            method=full,
            seq_len=2048,
            recompute=Recompute.FULL,
        ),
        _t("gemma2-lora-s2048-recompute-full", "gemma2", method=lora, seq_len=2048, recompute=Recompute.FULL),
        # eager attention (the s x s scores are saved)
        _t(
            "llama-full-s2048-eager",
            "llama",
            method=full,
            seq_len=2048,
            attention=AttentionImpl.EAGER,
            fast=True,
        ),
        _t("qwen2-full-s2048-eager", "qwen2", method=full, seq_len=2048, attention=AttentionImpl.EAGER),
        _t("gpt2-full-s1024-eager", "gpt2", method=full, attention=AttentionImpl.EAGER),
        _t("gemma2-full-s2048-eager", "gemma2", method=full, seq_len=2048),
        _t("llama-lora-s2048-eager", "llama", method=lora, seq_len=2048, attention=AttentionImpl.EAGER),
        # sequence lengths 512 .. 8192, batch sizes
        _t("llama3-gqa-full-s512-b4", "llama3-gqa", method=full, seq_len=512, micro_batch_size=4),
        _t("llama3-gqa-full-s4096", "llama3-gqa", method=full, seq_len=4096),
        _t("llama3-gqa-lora-s8192", "llama3-gqa", method=lora, seq_len=8192),
        _t("mistral-full-s8192-sliding", "mistral", method=full, seq_len=8192),
        _t(
            "mistral-lora-s8192-recompute-full",
            "mistral",
            method=lora,
            seq_len=8192,
            recompute=Recompute.FULL,
        ),
        _t("phi3-full-s512-b4", "phi3", method=full, seq_len=512, micro_batch_size=4),
        _t("opt-full-s2048-b2", "opt", method=full, seq_len=2048, micro_batch_size=2),
        # precisions and optimizer implementations
        _t("gpt2-full-fp32", "gpt2", method=full, precision=Precision.FP32),
        _t("opt-full-fp32-s512", "opt", method=full, precision=Precision.FP32, seq_len=512),
        _t("llama-full-bf16-pure", "llama", method=full, precision=Precision.BF16),
        _t("llama-full-fused-adamw", "llama", method=full, optimizer_impl=OptimizerImpl.FUSED),
        _t("llama3-gqa-full-amp-bf16", "llama3-gqa", method=full, precision=Precision.AMP_BF16),
        # PEFT methods
        _t("llama-lora-all-linear-s2048", "llama", method=lora, seq_len=2048, peft=_ALL_LINEAR),
        _t("llama3-gqa-lora-all-linear-s4096", "llama3-gqa", method=lora, seq_len=4096, peft=_ALL_LINEAR),
        _t("mixtral-lora-s1024-all-linear", "mixtral", method=lora, peft=_ALL_LINEAR),
        _t("llama-qlora-s1024", "llama", method=qlora, peft=_ALL_LINEAR, fast=True),
        _t("qwen2-qlora-s2048", "qwen2", method=qlora, seq_len=2048, peft=_ALL_LINEAR),
        _t(
            "mistral-qlora-s4096-recompute-full",
            "mistral",
            method=qlora,
            seq_len=4096,
            peft=_ALL_LINEAR,
            recompute=Recompute.FULL,
        ),
        _t("llama3-gqa-qlora-s2048", "llama3-gqa", method=qlora, seq_len=2048, peft=_ALL_LINEAR),
        _t("llama-lora-dropout-all-linear", "llama", method=lora, peft=replace(_ALL_LINEAR, lora_dropout=0.05)),
        _t("llama-lora-bf16-adapters", "llama", method=lora, peft=replace(_ALL_LINEAR, adapter_dtype=_BF16)),
        _t("llama-lora-bf16-dropout", "llama", method=lora, peft=replace(_ALL_LINEAR, adapter_dtype=_BF16, lora_dropout=0.1)),
        _t("llama-dora-s1024", "llama", method=Method.DORA),
        _t(
            "llama-ia3-s1024",
            "llama",
            method=Method.IA3,
            peft=PeftSpec(lora_targets=("k_proj", "v_proj", "down_proj")),
        ),
        _t(
            "llama-prefix-s1024",
            "llama",
            method=Method.PREFIX,
            peft=PeftSpec(num_virtual_tokens=32),
            fast=True,
        ),
        _t(
            "qwen2-prefix-s2048",
            "qwen2",
            method=Method.PREFIX,
            seq_len=2048,
            peft=PeftSpec(num_virtual_tokens=32),
        ),
        _t("llama-prompt-s1024", "llama", method=Method.PROMPT, peft=PeftSpec(num_virtual_tokens=32)),
        _t(
            "gpt2-prompt-s512",
            "gpt2",
            method=Method.PROMPT,
            seq_len=512,
            peft=PeftSpec(num_virtual_tokens=32),
            fast=True,
        ),
        _t("llama-layernorm-tuning", "llama", method=Method.LAYERNORM),
        # inference: batch and long contexts
        _i("llama3-gqa-infer-b4-p4096-d32", "llama3-gqa", batch=4, context_len=4128, prompt_len=4096),
        _i("mistral-infer-p8192-d16-sliding", "mistral", context_len=8208, prompt_len=8192),
        _i("gemma2-infer-b2-p2048-d16", "gemma2", batch=2, context_len=2064, prompt_len=2048),
        _i("mixtral-infer-b4-p1024-d16", "mixtral", batch=4, context_len=1040, prompt_len=1024, fast=True),
        _i("qwen2-infer-b8-p512-d64", "qwen2", batch=8, context_len=576, prompt_len=512),
        _i("opt-infer-fp16-b2-p1024", "opt", batch=2, context_len=1040, prompt_len=1024),
        # full-size models (the trace composes one traced layer into the whole stack)
        _t("llama-2-7b-full-s2048", "llama-2-7b", method=full, seq_len=2048),
        _t(
            "llama-2-7b-full-s2048-fused",
            "llama-2-7b",
            method=full,
            seq_len=2048,
            optimizer_impl=OptimizerImpl.FUSED,
        ),
        _t(
            "llama-3.1-8b-lora-s4096-recompute-full",
            "llama-3.1-8b",
            method=lora,
            seq_len=4096,
            recompute=Recompute.FULL,
            peft=_ALL_LINEAR,
        ),
        _t("mistral-7b-qlora-s2048", "mistral-7b-v0.1", method=qlora, seq_len=2048, peft=_ALL_LINEAR),
        _i("mixtral-8x7b-infer-b4-p2048", "mixtral-8x7b-v0.1", batch=4, context_len=2080, prompt_len=2048),
        _i("llama-3.1-8b-infer-b16-p4096", "llama-3.1-8b", batch=16, context_len=4160, prompt_len=4096),
    ]
    return tuple(cases)


CASES: tuple[TraceCase, ...] = _cases()
FAST: tuple[TraceCase, ...] = tuple(c for c in CASES if c.fast)


@dataclass(frozen=True, slots=True)
class TraceComparison:
    """Analytic vs trace peak allocated bytes for one case (or why it could not run)."""

    case: TraceCase
    analytic_bytes: int | None
    trace_bytes: int | None
    trace_s: float = 0.0
    error: str = ""
    """Why a figure is missing (an engine refused the job, or raised)."""
    term_deltas: tuple[tuple[str, int], ...] = ()
    """Analytic minus trace bytes per trace category at the peak: where a difference comes from."""

    def main_differences(self, share: float = 0.01) -> tuple[tuple[str, int], ...]:
        """The terms whose difference exceeds `share` of the traced peak, largest first."""
        if not self.trace_bytes:
            return ()
        big = [(t, d) for t, d in self.term_deltas if abs(d) > share * self.trace_bytes]
        return tuple(sorted(big, key=lambda td: -abs(td[1])))

    @property
    def error_pct(self) -> float | None:
        if self.analytic_bytes is None or not self.trace_bytes:
            return None
        return (self.analytic_bytes - self.trace_bytes) / self.trace_bytes * 100.0


Progress = Callable[[str], None]


def run_matrix(cases: Iterable[TraceCase], progress: Progress | None = None) -> list[TraceComparison]:
    """Run every case through both engines (the trace engine is imported here, lazily)."""
    from llmplan.validate import engines

    out: list[TraceComparison] = []
    for case in cases:
        if progress is not None:
            progress(case.id)
        out.append(engines.compare_trace_case(case))
    return out
