"""KV-cache bytes: exact reference cases (source and tolerance 0: these are integer identities)."""

from __future__ import annotations

import pytest

from llmplan.errors import LayoutError
from llmplan.formulas.kv_cache import kv_bytes_per_token, kv_cache_bytes, kv_heads_per_rank, sliding_tokens
from llmplan.loading import load_model
from llmplan.specs.inference import Engine
from llmplan.units import GIB, KIB

# (model, tokens, dtype bytes, tp, engine, expected bytes per sequence, source)
CASES = [
    ("llama-2-7b", 2048, 2, 1, Engine.HF, 2 * 32 * 32 * 128 * 2048 * 2, "MHA: 2·L·H·d·t·2 = 1 GiB"),
    ("llama-3-8b", 1, 2, 1, Engine.HF, 128 * KIB, "GQA 8 kv heads: 2·32·8·128·2 = 128 KiB/token"),
    ("llama-3-8b", 1000, 1, 1, Engine.HF, 64 * KIB * 1000, "fp8 KV halves it"),
    (
        "deepseek-v3",
        1,
        2,
        1,
        Engine.VLLM,
        (512 + 64) * 61 * 2 * 16,
        "MLA latent + rope key, one 16-token block",
    ),
    ("deepseek-v3", 1, 2, 8, Engine.HF, (512 + 64) * 61 * 2, "MLA latent replicated on each tp rank"),
    ("starcoder", 100, 2, 1, Engine.HF, 2 * 40 * 1 * 128 * 100 * 2, "MQA: one kv head"),
    (
        "llama-3-8b",
        1,
        2,
        16,
        Engine.HF,
        2 * 32 * 1 * 128 * 2,
        "tp 16 > 8 kv heads: one replicated head per rank",
    ),
    ("llama-3-8b", 1, 2, 4, Engine.HF, 2 * 32 * 2 * 128 * 2, "tp 4: 2 kv heads per rank"),
    ("llama-3-8b", 17, 2, 1, Engine.VLLM, 128 * KIB * 32, "17 tokens = 2 blocks of 16"),
]


@pytest.mark.parametrize(("model", "tokens", "dtype", "tp", "engine", "expected", "why"), CASES)
def test_kv_bytes_exact(
    model: str, tokens: int, dtype: int, tp: int, engine: Engine, expected: int, why: str
) -> None:
    spec = load_model(model)
    got = kv_cache_bytes(spec, tokens, 1, dtype, tp=tp, engine=engine).total
    assert got == expected, why


def test_llama2_7b_one_gib_per_2048_tokens() -> None:
    assert kv_cache_bytes(load_model("llama-2-7b"), 2048, 1, 2).total == 1 * GIB == 1_073_741_824


def test_batch_is_linear() -> None:
    spec = load_model("llama-3-8b")
    assert kv_cache_bytes(spec, 4096, 7, 2).total == 7 * kv_cache_bytes(spec, 4096, 1, 2).total


def test_deepseek_v3_per_token() -> None:
    assert kv_bytes_per_token(load_model("deepseek-v3"), 2) == (512 + 64) * 61 * 2 == 70_272


def test_mistral_sliding_window_hf_keeps_window_minus_one() -> None:
    """transformers DynamicSlidingWindowLayer keeps full[:, :, -window + 1:] after each update."""
    spec = load_model("mistral-7b-v0.1")
    per_token = 2 * 32 * 8 * 128 * 2
    assert kv_cache_bytes(spec, 4000, 1, 2).total == per_token * 4000
    assert kv_cache_bytes(spec, 10_000, 1, 2).total == per_token * 4095
    assert sliding_tokens(4096, 10_000, Engine.HF) == 4095


def test_mistral_sliding_window_vllm_caps_blocks() -> None:
    spec = load_model("mistral-7b-v0.1")
    per_token = 2 * 32 * 8 * 128 * 2
    blocks = -(-4095 // 16) + 1
    assert kv_cache_bytes(spec, 32_768, 1, 2, engine=Engine.VLLM).total == per_token * blocks * 16


def test_gemma2_only_local_layers_slide() -> None:
    spec = load_model("gemma-2-9b")
    got = kv_cache_bytes(spec, 8192, 1, 2)
    per_layer_token = 2 * 8 * 256 * 2
    assert got.full_layers_bytes == 21 * per_layer_token * 8192
    assert got.sliding_layers_bytes == 21 * per_layer_token * 4095


def test_tp_not_dividing_kv_heads() -> None:
    with pytest.raises(LayoutError, match="kv heads"):
        kv_heads_per_rank(load_model("llama-3-8b"), 3)
