"""KV-cache bytes, exact, for MHA / GQA / MQA / MLA, sliding-window layers, tensor parallel and paging.

Per layer and token a standard attention layer caches a key and a value per kv head:
    bytes = 2 · kv_heads · head_dim · dtype_bytes                      (MHA: kv_heads = heads; MQA: 1)
so a sequence of `t` tokens costs 2 · layers · kv_heads · head_dim · t · dtype_bytes
(Llama-2-7B, 2048 tokens, fp16: 2·32·32·128·2048·2 = 1 GiB; Pope et al. 2022, section 2.2).

MLA (DeepSeek-V2/V3, Liu et al. 2024, section 2.1.2): one "head" of kv_lora_rank + qk_rope_head_dim per token
per layer — the compressed latent c_KV and the decoupled RoPE key. vLLM caches exactly this
(`MLACommonImpl`, head_size = kv_lora_rank + qk_rope_head_dim, one kv head), and so does transformers 5.x:
`DeepseekV3Attention.forward` calls `past_key_values.update(kv_nope, k_rot)` with the latent viewed as one
head of kv_lora_rank and the rope key as one head of qk_rope_head_dim, and decompresses after the cache
(`expand_kv`). Both engines replicate the latent on every tp rank (it is not split by heads).

Sliding-window layers (Mistral v0.1, Gemma 2/3 local layers) keep only recent tokens:
- transformers `DynamicSlidingWindowLayer.update` keeps `full[:, :, -sliding_window + 1:]`, i.e.
  min(t, window - 1) tokens after each forward (the token being decoded is concatenated transiently, so the
  window seen by attention is `window`); transformers/cache_utils.py;
- vLLM (`SlidingWindowSpec`, v1 hybrid KV-cache manager) frees blocks that fall out of the window: a sequence
  holds at most ceil((window - 1) / block_size) + 1 blocks of a sliding layer.

Tensor parallel: each rank holds kv_heads / tp heads; when tp > kv_heads the heads are replicated so that each
rank holds one (vLLM `QKVParallelLinear`, num_kv_head_replicas = tp / kv_heads).

PagedAttention (Kwon et al. 2023, section 4.1): a sequence holds ceil(t / block_size) blocks of block_size
tokens, the last one partly empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LayoutError
from llmplan.specs.inference import Engine
from llmplan.specs.model import AttentionKind, ModelSpec


@dataclass(frozen=True, slots=True)
class KvCacheBytes:
    """KV-cache bytes on one rank for a batch, split by layer kind."""

    full_layers_bytes: int
    sliding_layers_bytes: int
    tokens_per_sequence: int
    batch: int

    @property
    def total(self) -> int:
        return self.full_layers_bytes + self.sliding_layers_bytes


def kv_heads_per_rank(model: ModelSpec, tp: int) -> int:
    """kv heads one tp rank caches: kv_heads / tp, or 1 (replicated) when tp > kv_heads.

    MLA caches one latent "head" per layer on every rank. Raises LayoutError when neither divides the other.
    """
    if model.mla is not None:
        return 1
    kv = model.num_key_value_heads
    if kv % tp == 0:
        return kv // tp
    if tp % kv == 0:
        return 1
    raise LayoutError(
        f"tp: {tp} neither divides nor is a multiple of the {kv} kv heads of {model.name} "
        f"(allowed: divisors of {kv} or multiples of it)"
    )


def kv_elems_per_token_per_layer(model: ModelSpec, tp: int = 1) -> int:
    """Cached elements per token per layer on one rank: 2·kv_heads·head_dim, or kv_lora_rank + rope (MLA)."""
    if model.mla is not None:
        return model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
    return 2 * kv_heads_per_rank(model, tp) * model.head_dim


def kv_bytes_per_token(model: ModelSpec, dtype_bytes: int, tp: int = 1) -> int:
    """Bytes per token summed over all layers (every layer counted, sliding ones too), one rank."""
    return model.num_hidden_layers * kv_elems_per_token_per_layer(model, tp) * dtype_bytes


def sliding_tokens(window: int | None, tokens: int, engine: Engine, block_size: int = 16) -> int:
    """Tokens a sliding-window layer of `window` holds for a sequence of `tokens` (module docstring)."""
    if window is None:
        return tokens
    if engine is Engine.HF:
        return min(tokens, window - 1)
    cap_blocks = -(-(window - 1) // block_size) + 1
    return min(-(-tokens // block_size), cap_blocks) * block_size


def layer_counts(model: ModelSpec) -> tuple[int, int]:
    """(full-attention layers, sliding-window layers)."""
    sliding = sum(1 for b in model.layers if b.attention is AttentionKind.SLIDING)
    return model.num_hidden_layers - sliding, sliding


def paged_kv_bytes(
    per_layer_token_bytes: int,
    n_full: int,
    n_sliding: int,
    window: int | None,
    tokens: int,
    batch: int,
    engine: Engine,
    block_size: int,
) -> KvCacheBytes:
    """The arithmetic of `kv_cache_bytes` with the per-model quantities already computed (for searches)."""
    full_tokens = tokens if engine is Engine.HF else -(-tokens // block_size) * block_size
    slide_tokens = sliding_tokens(window, tokens, engine, block_size)
    return KvCacheBytes(
        full_layers_bytes=n_full * per_layer_token_bytes * full_tokens * batch,
        sliding_layers_bytes=n_sliding * per_layer_token_bytes * slide_tokens * batch,
        tokens_per_sequence=tokens,
        batch=batch,
    )


def kv_cache_bytes(
    model: ModelSpec,
    tokens: int,
    batch: int,
    dtype_bytes: int,
    *,
    tp: int = 1,
    engine: Engine = Engine.HF,
    block_size: int = 16,
) -> KvCacheBytes:
    """KV cache of `batch` sequences of `tokens` tokens on one tp rank.

    HF: exact `DynamicCache` bytes (no padding). vLLM: whole blocks, ceil(tokens / block_size) per sequence
    for full layers and the sliding-window cap for sliding layers.
    """
    n_full, n_sliding = layer_counts(model)
    per_layer = kv_elems_per_token_per_layer(model, tp) * dtype_bytes
    return paged_kv_bytes(
        per_layer, n_full, n_sliding, model.sliding_window, tokens, batch, engine, block_size
    )
