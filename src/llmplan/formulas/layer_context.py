"""The sizes every per-layer activation formula shares: dtype bytes, tokens on this rank, which linears carry
adapters (`LayerContext`), and the element sizes of the tensors the formulas count."""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.formulas.logits import FP32
from llmplan.formulas.parallel.context import query_tokens_on_rank
from llmplan.specs.model import Group, Linear, ModelSpec
from llmplan.specs.training import Layout, Method, Precision, TrainingJob

INT64 = 8
DROPOUT_MASK_BYTES = 1
"""native_dropout saves a bool mask on CUDA (one byte per element)."""

BASE_TRAINS = frozenset({Method.FULL, Method.FREEZE})
INPUT_NEEDS_GRAD = frozenset({Method.FULL, Method.PROMPT, Method.PTUNING})
"""Methods whose first decoder layer's input requires grad (trained or prompt-tuned embeddings)."""
NORMS_TRAIN = frozenset({Method.FULL, Method.FREEZE, Method.LAYERNORM})


@dataclass(frozen=True, slots=True)
class LayerContext:
    """What the per-layer formulas read from model, job and layout."""

    model: ModelSpec
    job: TrainingJob
    layout: Layout
    adapted: frozenset[str]
    e: int  # compute dtype bytes
    f: int  # saved GEMM input bytes
    s_q: int  # query tokens per sequence on this rank (context parallel splits it)
    s_k: int  # key length per sequence


def compute_bytes(precision: Precision) -> int:
    """Bytes of an activation element: 4 under fp32, else 2 (fp8 training keeps bf16 activations)."""
    return FP32 if precision is Precision.FP32 else 2


def layer_context(
    model: ModelSpec, job: TrainingJob, layout: Layout, adapted: frozenset[str]
) -> LayerContext:
    """Sizes the formulas share: dtype bytes, query length on this rank (sequence / cp, virtual tokens of
    prompt tuning included) and key length (prefix tokens included)."""
    e = compute_bytes(job.precision)
    s = job.seq_len
    if job.method in (Method.PROMPT, Method.PTUNING):
        s += job.peft.num_virtual_tokens  # virtual tokens are prepended to the sequence
    s_k = s + (job.peft.num_virtual_tokens if job.method in (Method.PREFIX, Method.PTUNING_V2) else 0)
    return LayerContext(
        model=model,
        job=job,
        layout=layout,
        adapted=adapted,
        e=e,
        f=1 if job.precision is Precision.FP8_MIXED else e,
        s_q=query_tokens_on_rank(s, layout.cp),
        s_k=s_k,
    )


def tokens_per_micro_batch(ctx: LayerContext) -> int:
    """Query tokens of one micro-batch on this rank: b · s / cp."""
    return ctx.job.micro_batch_size * ctx.s_q


def is_adapted(ctx: LayerContext, lin: Linear) -> bool:
    """The linear carries a LoRA-family adapter or an IA3 vector (by its leaf or full module name)."""
    return lin.leaf_name in ctx.adapted or lin.name in ctx.adapted


def norm_out_bytes(ctx: LayerContext) -> int:
    """Bytes of a norm's output: fp32 under autocast (fp32 weight times the fp32-computed input), else e."""
    return FP32 if ctx.job.precision is Precision.AMP_BF16 else ctx.e


def param_wrapped(ctx: LayerContext, lin: Linear) -> bool:
    """An adapted tensor that is not an nn.Linear (fused experts, MoE router weight): peft wraps the parameter."""
    return lin.group in (Group.ROUTED_EXPERTS, Group.ROUTER) and is_adapted(ctx, lin)
