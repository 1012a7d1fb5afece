"""The memory records of an inference estimate: weights (with their quantized payload, scales and
high-precision parts), the KV cache, the prefill activation peak (a temporary) and the engine's overheads,
each a `Term` with its formula, its numbers and its source. `estimate.inference` takes the values from
`estimate.inference_memory` and calls `memory_terms`; `--explain` and the JSON read these records."""

from __future__ import annotations

from llmplan.breakdown import (
    CUBLAS_WORKSPACE,
    CUDA_CONTEXT,
    CUDA_GRAPHS,
    KV_CACHE,
    NCCL_BUFFERS,
    OVERHEADS,
    TEMPORARIES,
    WEIGHTS,
    Breakdown,
    Term,
    Unit,
)
from llmplan.estimate.inference_memory import VLLM_TP_COMMUNICATORS, Footprint
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas.overheads import NCCL_BYTES_PER_COMMUNICATOR
from llmplan.specs.inference import Engine


def _b(value: int) -> str:
    return f"{value:,} B"


def memory_terms(fp: Footprint, kv_bytes: int, act_bytes: int, blocks: int | None = None) -> Breakdown:
    """The records of one GPU: `kv_bytes` the cache (vLLM: the pool of `blocks` blocks), `act_bytes` the
    activation peak."""
    job, w = fp.job, fp.weights
    weights = Term(
        WEIGHTS,
        w.total,
        Unit.BYTES,
        f"{job.quant.value} linears + scales / zeros + tensors kept in {job.compute_dtype.value}, tp {job.tp}, "
        f"pp {job.pp} = {_b(w.total)}",
        "formulas/quant.py (GPTQ / AWQ group scales, NF4 double quantization, GGUF blocks)",
        (
            Term(
                "weights.quantized", w.quantized_bytes, Unit.BYTES, "packed payload of the quantized linears"
            ),
            Term(
                "weights.scales", w.scales_bytes, Unit.BYTES, "scales, absmax constants, zero points, codes"
            ),
            Term(
                "weights.high_precision",
                w.high_precision_bytes,
                Unit.BYTES,
                "embeddings, lm_head, norms, biases, routers in the compute dtype",
            ),
        ),
    )
    kv = Term(
        KV_CACHE,
        kv_bytes,
        Unit.BYTES,
        _kv_formula(fp, kv_bytes, blocks),
        "formulas/kv_cache.py (transformers DynamicCache; vLLM PagedAttention blocks, Kwon et al. 2023)",
    )
    where = "the profile run at max_num_batched_tokens" if job.engine is Engine.VLLM else "one prefill"
    temps = Term(
        TEMPORARIES,
        act_bytes,
        Unit.BYTES,
        f"largest activation transient of {where} = {_b(act_bytes)}",
        "estimate/inference_memory.py (transformers forward; vLLM determine_available_memory)",
    )
    over = Term(
        OVERHEADS,
        fp.workspace + fp.non_torch,
        Unit.BYTES,
        "cuBLAS workspace + CUDA context + NCCL + CUDA graphs",
        "formulas/overheads.py; estimate/inference_memory.py",
        (
            Term(
                CUBLAS_WORKSPACE,
                fp.workspace,
                Unit.BYTES,
                f"one workspace = {_b(fp.workspace)}",
                "aten/src/ATen/cuda/CublasHandlePool.cpp",
            ),
            Term(
                CUDA_CONTEXT,
                fp.cuda_context,
                Unit.BYTES,
                f"context of the architecture = {_b(fp.cuda_context)}",
                "formulas/overheads.py",
            ),
            Term(
                NCCL_BUFFERS,
                fp.nccl,
                Unit.BYTES,
                f"tp {job.tp}: {VLLM_TP_COMMUNICATORS if fp.nccl else 0} communicators × "
                f"{_b(NCCL_BYTES_PER_COMMUNICATOR)} = {_b(fp.nccl)}",
                "NCCL docs (NCCL_BUFFSIZE); vllm/distributed/parallel_state.py (two communicators per group)",
            ),
            Term(
                CUDA_GRAPHS,
                fp.cuda_graphs,
                Unit.BYTES,
                f"vLLM graph pool {_b(fp.cuda_graphs)}",
                "vLLM startup log 'Graph capturing finished'",
            ),
        ),
    )
    return Breakdown(Unit.BYTES, (weights, kv, temps, over))


def _kv_formula(fp: Footprint, kv_bytes: int, blocks: int | None) -> str:
    model, job = fp.model, fp.job
    if model.mla is not None:
        shape = f"(kv_lora_rank {model.mla.kv_lora_rank} + rope {model.mla.qk_rope_head_dim})"
    else:
        shape = f"2 · {kvf.kv_heads_per_rank(model, job.tp)} kv heads · {model.head_dim} head_dim"
    per_layer = fp.kv_layer_token_bytes
    head = f"{shape} · {fp.kv_bytes} B = {_b(per_layer)} per token per layer × {fp.stage_layers} layers"
    sliding = (
        f" ({fp.n_sliding} sliding layers hold at most {model.sliding_window} tokens)" if fp.n_sliding else ""
    )
    if blocks is not None:
        return f"{head}{sliding}; vLLM pre-allocates {blocks:,} blocks of {job.vllm.block_size} tokens = {_b(kv_bytes)}"
    return f"{head}{sliding} × {job.context_len} tokens × {job.batch} sequences = {_b(kv_bytes)}"
