"""estimate_inference: memory per GPU, what fits, and how fast, for serving a model.

The memory terms (weights, KV cache, the prefill activation peak as temporaries, the engine's overheads) are
`Term` records whose formulas and sources are written where their values are taken, below; the formulas of
the memory model are described in `estimate.inference_memory`, the roofline in `estimate.inference_speed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.breakdown import CUBLAS_WORKSPACE, KV_CACHE, OVERHEADS, TEMPORARIES, WEIGHTS, Breakdown
from llmplan.catalog.torch_memory import torch_total
from llmplan.errors import raise_problems
from llmplan.estimate.inference_memory import (
    CUDA_GRAPH_BYTES,
    Footprint,
    max_batch,
    max_context,
)
from llmplan.estimate.inference_speed import InferenceSpeed, speed
from llmplan.estimate.inference_terms import memory_terms
from llmplan.estimate.validation_inference import inference_problems
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas.quant import WeightBytes
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob
from llmplan.specs.model import ModelSpec


@dataclass(frozen=True, slots=True)
class InferenceMemory:
    """Bytes on one GPU (the most loaded rank / stage)."""

    weights: WeightBytes
    kv_cache_bytes: int
    activation_peak_bytes: int
    torch_workspace_bytes: int
    """cuBLAS workspace (inside the torch allocator)."""
    non_torch_bytes: int
    """CUDA context, NCCL buffers and CUDA graphs: seen by nvidia-smi, not by torch."""
    reserved_bytes: int
    """What the caching allocator holds: allocated (HF: fragmentation not modelled) or vLLM's whole budget."""

    @classmethod
    def of(cls, terms: Breakdown) -> InferenceMemory:
        """The memory of the records of `memory_terms` (reserved = allocated: fragmentation not modelled for
        HF, vLLM's pool is the reservation)."""
        w, over = terms.get(WEIGHTS), terms.get(OVERHEADS)
        workspace = int(over.find(CUBLAS_WORKSPACE).value)  # type: ignore[union-attr]
        weights = WeightBytes(*(int(p.value) for p in w.parts))
        kv, act = int(terms.value(KV_CACHE)), int(terms.value(TEMPORARIES))
        return cls(
            weights=weights,
            kv_cache_bytes=kv,
            activation_peak_bytes=act,
            torch_workspace_bytes=workspace,
            non_torch_bytes=int(over.value) - workspace,
            reserved_bytes=weights.total + kv + act + workspace,
        )

    @property
    def allocated_bytes(self) -> int:
        return (
            self.weights.total + self.kv_cache_bytes + self.activation_peak_bytes + self.torch_workspace_bytes
        )

    @property
    def device_bytes(self) -> int:
        return self.reserved_bytes + self.non_torch_bytes

    @property
    def total(self) -> int:
        """The `device` counter (what nvidia-smi shows), compared with the accelerator's memory."""
        return self.device_bytes


@dataclass(frozen=True, slots=True)
class VllmBudget:
    """vLLM's KV-cache capacity on one GPU, as `determine_available_memory` computes it."""

    requested_bytes: int
    """total memory · gpu_memory_utilization."""
    profile_peak_bytes: int
    """torch peak of the profile run: weights + activations at max_num_batched_tokens."""
    non_torch_bytes: int
    available_kv_bytes: int
    num_gpu_blocks: int
    block_bytes: int
    """block_size · KV bytes per token, all layers on this rank."""
    max_concurrency: int
    """Sequences of `context_len` tokens the blocks hold at once."""

    @property
    def total(self) -> int:
        return self.requested_bytes


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    model: str
    accelerator: str
    job: InferenceJob
    memory: InferenceMemory
    terms: Breakdown
    """The records of `memory`: weights, kv_cache, temporaries, overheads; terms.total == memory.total."""
    capacity_bytes: int
    fits: bool
    headroom_bytes: int
    """Bytes left: device capacity - device bytes for hf; for vllm, the KV-cache pool the job leaves unused (vLLM
    pre-allocates the whole pool, so the device is nearly full either way)."""
    max_batch_at_context: int
    """Largest batch (concurrency) of `context_len` sequences that fits (0 if not even one)."""
    max_context_at_batch: int
    """Largest context for `batch` sequences that fits (0 if none), capped at the model's maximum."""
    vllm: VllmBudget | None
    speed: InferenceSpeed
    notes: tuple[str, ...]

    @property
    def allocated_bytes(self) -> int:
        return self.memory.allocated_bytes

    @property
    def reserved_bytes(self) -> int:
        return self.memory.reserved_bytes

    @property
    def device_bytes(self) -> int:
        return self.memory.device_bytes

    @property
    def total(self) -> int:
        return self.memory.total


def validate(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> list[str]:
    """Raise InvalidInputError carrying every problem of `job` (`estimate.validation_inference`); return the
    notes about what was allowed."""
    found, notes = inference_problems(model, job, cluster)
    raise_problems(found)
    return list(notes)


def estimate_inference(model: ModelSpec, job: InferenceJob, cluster: Cluster) -> InferenceEstimate:
    """Memory per GPU, verdict, the largest batch / context that fits, vLLM's KV budget and roofline speed."""
    acc = cluster.accelerator
    notes = validate(model, job, cluster)
    fp = Footprint(model, job, acc)
    c, b = job.context_len, job.batch
    kv = fp.kv(c, b)
    budget = None
    if job.engine is Engine.VLLM:
        available = fp.vllm_available()
        per_token = (
            kvf.kv_bytes_per_token(model, fp.kv_bytes, job.tp) * fp.stage_layers // model.num_hidden_layers
        )
        block_bytes = job.vllm.block_size * per_token
        blocks = max(0, available) // block_bytes
        per_seq = fp.kv(c, 1)
        budget = VllmBudget(
            requested_bytes=int(torch_total(acc).bytes * job.vllm.gpu_memory_utilization),
            profile_peak_bytes=fp.vllm_peak,
            non_torch_bytes=fp.non_torch - (CUDA_GRAPH_BYTES if job.vllm.cuda_graphs else 0),
            available_kv_bytes=available,
            num_gpu_blocks=blocks,
            block_bytes=block_bytes,
            max_concurrency=max(0, available) // per_seq,
        )
        terms = memory_terms(fp, blocks * block_bytes, fp.vllm_act, blocks)
        memory = InferenceMemory.of(terms)
        fits = available > 0 and kv <= available and memory.device_bytes <= acc.memory_bytes
        headroom = available - kv
        notes.append(
            f"vLLM pre-allocates {blocks} blocks of {job.vllm.block_size} tokens; the job needs "
            f"{-(-kv // block_bytes)} of them"
        )
        if available <= 0:
            notes.append(
                "vLLM cannot start: weights + profiled activations + non-torch memory exceed gpu_memory_utilization "
                "x memory (vLLM raises 'No available memory for the cache blocks'); add GPUs (--tp) or quantize"
            )
        elif budget.max_concurrency == 0:
            notes.append(
                f"vLLM refuses max_model_len {c}: one sequence needs more KV cache than the {available:,} bytes "
                "left (lower --context or raise gpu_memory_utilization)"
            )
        if b > job.vllm.max_num_seqs:
            notes.append(
                f"batch {b} > max_num_seqs {job.vllm.max_num_seqs}: vLLM decodes {job.vllm.max_num_seqs} at a time "
                "and queues the rest (speed below is for that batch)"
            )
    else:
        prompt = min(job.prefill_tokens, c)
        terms = memory_terms(fp, kv, fp.hf_activation(c, b, prompt))
        memory = InferenceMemory.of(terms)
        fits = memory.device_bytes <= acc.memory_bytes
        headroom = acc.memory_bytes - memory.device_bytes
    cap = model.max_position_embeddings
    return InferenceEstimate(
        model=model.name,
        accelerator=acc.name,
        job=job,
        memory=memory,
        terms=terms,
        capacity_bytes=acc.memory_bytes,
        fits=fits,
        headroom_bytes=headroom,
        max_batch_at_context=(
            min(max_batch(fp, c), job.vllm.max_num_seqs) if job.engine is Engine.VLLM else max_batch(fp, c)
        ),
        max_context_at_batch=max_context(fp, b, max(cap, c)),
        vllm=budget,
        speed=speed(model, job, cluster, fp),
        notes=tuple(notes),
    )
