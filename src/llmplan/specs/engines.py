"""Scheduling defaults of the serving engines, each with the engine file (at a version) it was read from.

One data module: the serving estimate (`llmplan.estimate.serving`) and the launch-config writers read the same
records. A default that depends on the GPU or the tp degree (vLLM's token budget, SGLang's chunk size, CUDA-graph
batch and memory fraction) is resolved by `engine_defaults(engine, accelerator, tp)`, which states the rule it
applied in the setting's `source`.

What each engine does when it runs out of KV-cache blocks (`Admission`) decides how far concurrency can go:
- vLLM allocates blocks as tokens are scheduled and, when a running request cannot get its next block, preempts
  the most recently admitted request (recompute: its blocks are freed and it goes back to the front of the
  queue) — vllm/v1/core/sched/scheduler.py `Scheduler.schedule`;
- SGLang admits a request when its prompt plus a reserve for future decode tokens fits and retracts requests
  when decoding runs out of room — python/sglang/srt/managers/schedule_policy.py `PrefillAdder`; modelled like
  vLLM (allocate on demand, preempt the newest);
- TensorRT-LLM's default capacity scheduler `GUARANTEED_NO_EVICT` admits a request only if blocks for its prompt
  and all of its `max_tokens` are free (tensorrt_llm/llmapi/llm_args.py `CapacitySchedulerPolicy`), so it never
  preempts;
- transformers `generate` runs one static batch to the end (no continuous batching, no paging).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from llmplan.errors import SpecError
from llmplan.specs.hardware import Accelerator
from llmplan.units import GIB


class ServingEngine(str, Enum):
    """The engine that schedules the requests."""

    VLLM = "vllm"
    """vLLM v1 (continuous batching, chunked prefill, PagedAttention)."""
    SGLANG = "sglang"
    """SGLang (continuous batching, chunked prefill, RadixAttention with page size 1)."""
    TRTLLM = "trtllm"
    """TensorRT-LLM through trtllm-serve / the LLM API, PyTorch backend (in-flight batching)."""
    HF = "hf"
    """transformers `generate`: one static batch, prefilled together and decoded until its longest request ends."""


class Admission(str, Enum):
    """How an engine admits requests into the KV-cache pool (module docstring)."""

    ON_DEMAND = "on-demand"
    """Blocks are allocated as tokens are scheduled; the newest request is preempted when they run out."""
    RESERVE_MAX = "reserve-max"
    """A request is admitted only when blocks for prompt + max output tokens are free; never preempts."""
    STATIC_BATCH = "static-batch"
    """The whole batch is allocated at once and runs to completion."""


class MemoryRule(str, Enum):
    """How the engine sizes its KV-cache pool."""

    TOTAL_MINUS_PEAK = "total-minus-peak"
    """vLLM: torch-visible total · gpu_memory_utilization − profiled torch peak − non-torch memory
    (vllm/v1/worker/gpu_worker.py `determine_available_memory`)."""
    STATIC_FRACTION = "static-fraction"
    """SGLang: mem_fraction_static · total − weights (python/sglang/srt/model_executor/model_runner.py
    `profile_max_num_token`: the static fraction holds weights and the KV pool)."""
    FREE_FRACTION = "free-fraction"
    """TensorRT-LLM: free_gpu_memory_fraction · memory free after the model and its activations are loaded
    (tensorrt_llm/llmapi/llm_args.py `KvCacheConfig.free_gpu_memory_fraction`)."""
    CONTIGUOUS = "contiguous"
    """transformers: a contiguous cache per layer grown by torch.cat; the batch must fit the device."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One default and where it was read."""

    value: float | int | bool | str
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineDefaults:
    """The scheduling and memory defaults of one engine on one GPU and tp degree."""

    engine: ServingEngine
    version: str
    max_num_seqs: Setting
    """Requests scheduled in one iteration at most."""
    max_num_batched_tokens: Setting
    """Tokens (prefill chunks + decodes) one iteration may hold; 0 = no limit (transformers)."""
    chunked_prefill: Setting
    """Long prompts are split into chunks of at most max_num_batched_tokens."""
    mixed_batches: Setting
    """Prefill chunks and decodes share an iteration; False: prefill-only iterations go first."""
    block_size: Setting
    """Tokens per KV-cache block (page)."""
    cuda_graphs: Setting
    cuda_graph_max_batch: Setting
    """Largest decode batch replayed from a captured CUDA graph; larger batches launch eagerly."""
    mixed_step_graphs: Setting
    """Whether iterations that carry prefill tokens also run from graphs (vLLM v1 piecewise graphs)."""
    memory_fraction: Setting
    memory_rule: MemoryRule
    admission: Admission

    def settings(self) -> tuple[tuple[str, Setting], ...]:
        """(name, setting) pairs in display order."""
        names = (
            "max_num_seqs",
            "max_num_batched_tokens",
            "chunked_prefill",
            "mixed_batches",
            "block_size",
            "cuda_graphs",
            "cuda_graph_max_batch",
            "mixed_step_graphs",
            "memory_fraction",
        )
        return tuple((n, getattr(self, n)) for n in names)


VLLM_VERSION = "v0.11.0"
_VLLM_ARGS = f"vllm-project/vllm {VLLM_VERSION} vllm/engine/arg_utils.py `EngineArgs.get_batch_defaults`"
SGLANG_VERSION = "v0.5.1"
_SGL_ARGS = f"sgl-project/sglang {SGLANG_VERSION} python/sglang/srt/server_args.py `ServerArgs.__post_init__`"
TRTLLM_VERSION = "v1.0.0"
_TRT_ARGS = f"NVIDIA/TensorRT-LLM {TRTLLM_VERSION} tensorrt_llm/llmapi/llm_args.py"
HF_VERSION = "5.x"
_HF = "huggingface/transformers generation/utils.py `GenerationMixin.generate` (static batch, DynamicCache)"


def _vllm(acc: Accelerator) -> EngineDefaults:
    big = acc.memory_bytes >= 70 * GIB and "a100" not in acc.name.lower()
    tier = ">= 70 GiB and not A100" if big else "< 70 GiB or A100"
    return EngineDefaults(
        engine=ServingEngine.VLLM,
        version=VLLM_VERSION,
        max_num_seqs=Setting(1024 if big else 256, f"{_VLLM_ARGS}: OPENAI_API_SERVER, GPU {tier}"),
        max_num_batched_tokens=Setting(8192 if big else 2048, f"{_VLLM_ARGS}: OPENAI_API_SERVER, GPU {tier}"),
        chunked_prefill=Setting(
            True, f"vllm {VLLM_VERSION} vllm/config/scheduler.py: v1 always chunks prefills"
        ),
        mixed_batches=Setting(
            True, f"vllm {VLLM_VERSION} vllm/v1/core/sched/scheduler.py: running decodes, then prefill chunks"
        ),
        block_size=Setting(
            16, f"vllm {VLLM_VERSION} vllm/config/cache.py `CacheConfig.block_size` (CUDA: 16)"
        ),
        cuda_graphs=Setting(
            True, f"vllm {VLLM_VERSION} vllm/config/compilation.py (off with --enforce-eager)"
        ),
        cuda_graph_max_batch=Setting(
            512, f"vllm {VLLM_VERSION} vllm/config/compilation.py `max_cudagraph_capture_size` default 512"
        ),
        mixed_step_graphs=Setting(
            True, f"vllm {VLLM_VERSION} piecewise CUDA graphs: every op but attention runs from graphs"
        ),
        memory_fraction=Setting(0.9, f"vllm {VLLM_VERSION} vllm/config/cache.py `gpu_memory_utilization`"),
        memory_rule=MemoryRule.TOTAL_MINUS_PEAK,
        admission=Admission.ON_DEMAND,
    )


def _sglang(acc: Accelerator, tp: int) -> EngineDefaults:
    mem_gib = acc.memory_bytes / GIB
    chunk = 2048 if mem_gib < 35 else (8192 if mem_gib < 160 else 16384)
    graph_bs = (256 if tp < 4 else 512) if mem_gib >= 35 else (8 if tp < 4 else 80)
    fraction = 0.79 if tp >= 16 else 0.81 if tp >= 8 else 0.85 if tp >= 4 else 0.87 if tp >= 2 else 0.88
    return EngineDefaults(
        engine=ServingEngine.SGLANG,
        version=SGLANG_VERSION,
        max_num_seqs=Setting(
            4096,
            f"sglang {SGLANG_VERSION} python/sglang/srt/model_executor/model_runner.py: max_running_requests "
            "capped at 4096 (the KV pool usually binds first)",
        ),
        max_num_batched_tokens=Setting(
            chunk, f"{_SGL_ARGS}: chunked_prefill_size by GPU memory ({mem_gib:.0f} GiB)"
        ),
        chunked_prefill=Setting(True, f"{_SGL_ARGS}: chunked_prefill_size > 0"),
        mixed_batches=Setting(False, f"{_SGL_ARGS}: enable_mixed_chunk False (prefill batches run alone)"),
        block_size=Setting(1, f"{_SGL_ARGS}: page_size 1 (token-granular RadixAttention pool)"),
        cuda_graphs=Setting(True, f"{_SGL_ARGS}: disable_cuda_graph False"),
        cuda_graph_max_batch=Setting(graph_bs, f"{_SGL_ARGS}: cuda_graph_max_bs by GPU memory and tp {tp}"),
        mixed_step_graphs=Setting(
            False, f"sglang {SGLANG_VERSION} cuda_graph_runner.py: decode batches only"
        ),
        memory_fraction=Setting(fraction, f"{_SGL_ARGS}: mem_fraction_static by tp {tp}"),
        memory_rule=MemoryRule.STATIC_FRACTION,
        admission=Admission.ON_DEMAND,
    )


def _trtllm() -> EngineDefaults:
    return EngineDefaults(
        engine=ServingEngine.TRTLLM,
        version=TRTLLM_VERSION,
        max_num_seqs=Setting(2048, f"{_TRT_ARGS} `BaseLlmArgs.max_batch_size` default 2048"),
        max_num_batched_tokens=Setting(8192, f"{_TRT_ARGS} `BaseLlmArgs.max_num_tokens` default 8192"),
        chunked_prefill=Setting(False, f"{_TRT_ARGS} `enable_chunked_prefill` default False"),
        mixed_batches=Setting(
            True, "TensorRT-LLM in-flight batching: context and generation requests in one iteration"
        ),
        block_size=Setting(32, f"{_TRT_ARGS} `KvCacheConfig.tokens_per_block` default 32"),
        cuda_graphs=Setting(True, f"{_TRT_ARGS} `cuda_graph_config` enabled by default (PyTorch backend)"),
        cuda_graph_max_batch=Setting(
            128, f"{_TRT_ARGS} `CudaGraphConfig._generate_cuda_graph_batch_sizes`: up to 128 when unset"
        ),
        mixed_step_graphs=Setting(False, f"{_TRT_ARGS}: graphs capture generation-only batches"),
        memory_fraction=Setting(0.9, f"{_TRT_ARGS} `KvCacheConfig.free_gpu_memory_fraction` default 0.9"),
        memory_rule=MemoryRule.FREE_FRACTION,
        admission=Admission.RESERVE_MAX,
    )


def _hf() -> EngineDefaults:
    return EngineDefaults(
        engine=ServingEngine.HF,
        version=HF_VERSION,
        max_num_seqs=Setting(0, f"{_HF}: the batch is whatever the caller passes (0 = the concurrency)"),
        max_num_batched_tokens=Setting(0, f"{_HF}: the whole batch's prompts in one forward (0 = no limit)"),
        chunked_prefill=Setting(False, _HF),
        mixed_batches=Setting(False, f"{_HF}: a batch is prefilled, then decoded"),
        block_size=Setting(1, f"{_HF}: contiguous per-layer cache"),
        cuda_graphs=Setting(False, f"{_HF}: eager unless cache_implementation='static' + torch.compile"),
        cuda_graph_max_batch=Setting(0, _HF),
        mixed_step_graphs=Setting(False, _HF),
        memory_fraction=Setting(1.0, f"{_HF}: no budget; the batch must fit the device"),
        memory_rule=MemoryRule.CONTIGUOUS,
        admission=Admission.STATIC_BATCH,
    )


def engine_defaults(engine: ServingEngine, accelerator: Accelerator, tp: int = 1) -> EngineDefaults:
    """The defaults `engine` applies on `accelerator` with tensor-parallel degree `tp`."""
    if tp < 1:
        raise SpecError("tp", f"{tp} is out of range (allowed: integers >= 1)")
    if engine is ServingEngine.VLLM:
        return _vllm(accelerator)
    if engine is ServingEngine.SGLANG:
        return _sglang(accelerator, tp)
    if engine is ServingEngine.TRTLLM:
        return _trtllm()
    return _hf()
