"""Checks that a serving job can run: every broken rule as a `Problem` record, plus notes on what is allowed.

`inference_problems(model, job, cluster)` returns (problems, notes) without raising; `estimate_inference`
raises one InvalidInputError carrying every problem. Conventions (see also `estimate.validation`):
- the context must fit the model's positions unless its rope scaling extends them dynamically;
- tp divides the attention heads; kv heads divide tp or tp divides them (`formulas.kv_cache`);
- fp8 weights need fp8 tensor cores; bf16 needs compute capability >= 8.0; flash-attn 2 as in training;
- GPTQ / AWQ group sizes divide every quantized linear's input width on each tensor-parallel rank (vLLM
  `GPTQLinearMethod.create_weights`: "The input size is not aligned with the quantized weight shape");
- int8 is not a vLLM KV-cache dtype (vLLM `CacheDType`).
"""

from __future__ import annotations

from llmplan.errors import LayoutError, Problem
from llmplan.estimate.validation import attention_problem, context_problem
from llmplan.formulas import kv_cache as kvf
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat
from llmplan.specs.model import Group, ModelSpec, TpSplit

GROUPED_FORMATS = (QuantFormat.GPTQ_INT4, QuantFormat.AWQ_INT4)


def inference_problems(
    model: ModelSpec, job: InferenceJob, cluster: Cluster
) -> tuple[tuple[Problem, ...], tuple[str, ...]]:
    """(every problem of `job` for `model` on `cluster`, notes about what was allowed)."""
    acc = cluster.accelerator
    out: list[Problem] = []
    notes: list[str] = []
    context, note = context_problem(model, "context", job.context_len)
    if context is not None:
        out.append(context)
    if note is not None:
        notes.append(note)
    heads = model.num_attention_heads
    if heads % job.tp:
        out.append(
            Problem.of(
                "tp",
                job.tp,
                f"divisors of {heads}",
                f"does not divide the {heads} attention heads of {model.name}",
            )
        )
    else:
        try:
            kvf.kv_heads_per_rank(model, job.tp)
        except LayoutError as exc:
            out.append(
                Problem(field="tp", value=str(job.tp), allowed="", message=str(exc).split(": ", 1)[-1])
            )
    if job.pp > model.num_hidden_layers:
        layers = model.num_hidden_layers
        out.append(Problem.of("pp", job.pp, f"1 to {layers}", f"exceeds the {layers} layers of {model.name}"))
    if job.tp * job.pp > cluster.num_gpus:
        out.append(
            Problem.of(
                "tp x pp",
                f"{job.tp} x {job.pp}",
                f"tp·pp <= {cluster.num_gpus}",
                f"needs {job.tp * job.pp} GPUs; the cluster has {cluster.num_gpus}",
            )
        )
    if job.quant in (QuantFormat.FP8, QuantFormat.FP8_CHANNEL) and not acc.supports("fp8"):
        floats = "fp16, bf16" if acc.supports("bf16") else "fp16"
        out.append(
            Problem.of(
                "quant",
                job.quant,
                f"fp32, {floats}, int8, gptq-int4, awq-int4, nf4, GGUF types here",
                "needs fp8 tensor cores (compute capability >= 8.9: Ada, Hopper, Blackwell, MI300); "
                f"{acc.name} has {acc.compute_capability or 'none'}",
            )
        )
    if job.activation_dtype is QuantFormat.BF16 and not acc.supports("bf16"):
        out.append(
            Problem.of(
                "quant" if job.quant.is_float else "compute_dtype",
                "bf16",
                "fp16 or fp32 here",
                f"needs compute capability >= 8.0; {acc.name} has {acc.compute_capability}",
            )
        )
    if job.engine is Engine.HF:
        kernel = attention_problem(job.attention, acc)
        if kernel is not None:
            out.append(kernel)
    if job.engine is Engine.VLLM and job.kv_dtype is KvDtype.INT8:
        out.append(
            Problem.of(
                "kv_dtype", job.kv_dtype, "auto, fp8 with --engine vllm", "is not a vLLM KV-cache dtype"
            )
        )
    group = group_size_problem(model, job)
    if group is not None:
        out.append(group)
    notes.extend(_notes(job, acc))
    return tuple(out), tuple(notes)


def group_size_problem(model: ModelSpec, job: InferenceJob) -> Problem | None:
    """A GPTQ / AWQ group size that does not divide some quantized linear's input width on a tp rank."""
    if job.quant not in GROUPED_FORMATS or job.group_size == -1:
        return None
    widths = set()
    for block in model.block_kinds:
        for lin in block.linears:
            if lin.group is Group.ROUTER:
                continue
            widths.add(lin.in_features // job.tp if lin.tp is TpSplit.ROW else lin.in_features)
    bad = sorted(w for w in widths if w % job.group_size)
    if not bad:
        return None
    return Problem.of(
        "group_size",
        job.group_size,
        f"-1 or a divisor of every width ({', '.join(str(w) for w in sorted(widths))})",
        f"does not divide the input width {bad[0]} of a quantized linear of {model.name} at tp {job.tp}",
    )


def _notes(job: InferenceJob, acc) -> list[str]:
    notes = []
    if job.engine is Engine.HF and job.kv_dtype in (KvDtype.FP8, KvDtype.INT8):
        notes.append(
            f"{job.kv_dtype.value} KV cache with transformers needs a quantized cache (QuantizedCache with quanto "
            "or HQQ); DynamicCache stores the compute dtype"
        )
    if job.engine is Engine.HF and job.quant.is_gguf:
        notes.append(
            "transformers dequantizes GGUF files on load (gguf_file=...): these are the bytes llama.cpp and vLLM "
            "hold; under transformers the weights take the compute dtype (use --quant bf16 / fp16 for that)"
        )
    if job.kv_dtype is KvDtype.FP8 and not acc.supports("fp8"):
        notes.append(
            "fp8 KV cache on a GPU without fp8 tensor cores: stored as fp8, upcast to fp16 in attention"
        )
    if job.quant.is_gguf and job.engine is Engine.VLLM:
        notes.append("vLLM's GGUF support is experimental and single-file only")
    return notes
