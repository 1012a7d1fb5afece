"""Parameter counts against transformers: exact, per tensor group, for every natively implemented model_type.

Reference: the transformers v5 model built on the meta device from the same config (no memory, no weights):
`sum(p.numel() for p in model.parameters())` (DeepSeek-V3's `e_score_correction_bias` is a buffer there, and is
left out of our count too). Tolerance: zero. Remote-code families (chatglm, baichuan, internlm2, ...: `native_transformers` false) cannot be built
without trust_remote_code; their catalog entries are checked against the published count instead.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from llmplan import catalog
from llmplan.adapters import ADAPTERS, parse_config
from llmplan.errors import UnknownIdError
from llmplan.formulas.params import ParamBreakdown, count_params

TOKENS = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
SMALL = {**TOKENS, "vocab_size": 96, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
LLAMA = {**SMALL, "intermediate_size": 48, "num_key_value_heads": 4}
MOE = {"moe_intermediate_size": 16, "num_experts_per_tok": 2}
MLA = {"kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8}
GPT2 = {**TOKENS, "vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}
BLOOM = {**TOKENS, "vocab_size": 96, "hidden_size": 32, "n_layer": 2, "n_head": 4}
OPT = {**SMALL, "ffn_dim": 64, "max_position_embeddings": 64}
NEOX = {**SMALL, "intermediate_size": 64}
MPT = {
    **TOKENS,
    "vocab_size": 96,
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "max_seq_len": 64,
    "no_bias": True,
    "attn_config": {"alibi": True},
}
NEMOTRON = {**LLAMA, "num_key_value_heads": 2}

# (case id, model_type, config): two layers, small widths, one case per flag that changes a count.
CASES: list[tuple[str, str, dict]] = [
    ("llama", "llama", LLAMA),
    ("llama-gqa-tied", "llama", {**LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": True}),
    (
        "llama-mqa-bias",
        "llama",
        {**LLAMA, "num_key_value_heads": 1, "attention_bias": True, "mlp_bias": True},
    ),
    ("llama-head-dim", "llama", {**LLAMA, "head_dim": 16}),
    ("mistral-sliding", "mistral", {**LLAMA, "num_key_value_heads": 2, "sliding_window": 16}),
    ("qwen2", "qwen2", {**LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": True}),
    ("qwen3", "qwen3", {**LLAMA, "num_key_value_heads": 2, "head_dim": 16}),
    ("mixtral", "mixtral", {**LLAMA, "num_local_experts": 4, "num_experts_per_tok": 2}),
    (
        "qwen2-moe-shared",
        "qwen2_moe",
        {**LLAMA, **MOE, "num_experts": 4, "shared_expert_intermediate_size": 24, "mlp_only_layers": [0]},
    ),
    ("qwen3-moe", "qwen3_moe", {**LLAMA, **MOE, "num_experts": 4, "num_key_value_heads": 2, "head_dim": 16}),
    ("gemma", "gemma", {**LLAMA, "num_key_value_heads": 1, "head_dim": 16}),
    ("gemma2", "gemma2", {**LLAMA, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 16}),
    ("gemma3-text", "gemma3_text", {**LLAMA, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 16}),
    ("phi3", "phi3", {**LLAMA, "num_key_value_heads": 2}),
    ("glm", "glm", {**LLAMA, "num_key_value_heads": 2, "head_dim": 16}),
    ("glm4", "glm4", {**LLAMA, "num_key_value_heads": 2, "head_dim": 16}),
    ("gpt2", "gpt2", GPT2),
    ("gpt2-inner-untied", "gpt2", {**GPT2, "n_inner": 48, "tie_word_embeddings": False}),
    (
        "gpt-bigcode-mqa",
        "gpt_bigcode",
        {"vocab_size": 100, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64},
    ),
    (
        "gpt-bigcode-mha-untied",
        "gpt_bigcode",
        {
            "vocab_size": 100,
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_positions": 64,
            "multi_query": False,
            "n_inner": 96,
            "tie_word_embeddings": False,
        },
    ),
    ("opt", "opt", OPT),
    (
        "opt-project-post-norm",
        "opt",
        {**OPT, "word_embed_proj_dim": 16, "do_layer_norm_before": False, "tie_word_embeddings": False},
    ),
    ("opt-no-bias-no-affine", "opt", {**OPT, "enable_bias": False, "layer_norm_elementwise_affine": False}),
    ("opt-removed-final-norm", "opt", {**OPT, "_remove_final_layer_norm": True}),
    ("bloom", "bloom", BLOOM),
    ("bloom-untied", "bloom", {**BLOOM, "tie_word_embeddings": False}),
    ("falcon-7b-style", "falcon", {**SMALL, "multi_query": True, "parallel_attn": True}),
    (
        "falcon-new-arch",
        "falcon",
        {**SMALL, "new_decoder_architecture": True, "num_kv_heads": 2, "bias": True, "ffn_hidden_size": 48},
    ),
    (
        "falcon-new-arch-one-ln",
        "falcon",
        {**SMALL, "new_decoder_architecture": True, "num_kv_heads": 2, "num_ln_in_parallel_attn": 1},
    ),
    (
        "falcon-mha-sequential-alibi",
        "falcon",
        {**SMALL, "multi_query": False, "parallel_attn": False, "alibi": True, "tie_word_embeddings": False},
    ),
    ("gpt-neox", "gpt_neox", NEOX),
    (
        "gpt-neox-sequential-tied",
        "gpt_neox",
        {**NEOX, "use_parallel_residual": False, "attention_bias": False, "tie_word_embeddings": True},
    ),
    ("gptj", "gptj", {**GPT2, "rotary_dim": 4}),
    ("gptj-tied", "gptj", {**GPT2, "rotary_dim": 4, "n_inner": 48, "tie_word_embeddings": True}),
    ("starcoder2", "starcoder2", {**LLAMA, "num_key_value_heads": 2, "sliding_window": 16}),
    ("starcoder2-no-bias", "starcoder2", {**LLAMA, "num_key_value_heads": 1, "use_bias": False}),
    ("mpt-alibi-no-bias", "mpt", MPT),
    ("mpt-untied", "mpt", {**MPT, "tie_word_embeddings": False}),
    ("nemotron", "nemotron", NEMOTRON),
    (
        "nemotron-head-dim-bias",
        "nemotron",
        {**NEMOTRON, "head_dim": 16, "attention_bias": True, "mlp_bias": True},
    ),
    ("nemotron-tied-mha", "nemotron", {**NEMOTRON, "num_key_value_heads": 4, "tie_word_embeddings": True}),
    (
        "deepseek-v2-lite",
        "deepseek_v2",
        {
            **LLAMA,
            **MOE,
            **MLA,
            "q_lora_rank": None,
            "n_routed_experts": 4,
            "n_shared_experts": 2,
            "first_k_dense_replace": 1,
        },
    ),
    (
        "deepseek-v2-q-lora-bias",
        "deepseek_v2",
        {
            **LLAMA,
            **MOE,
            **MLA,
            "q_lora_rank": 24,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "first_k_dense_replace": 0,
            "attention_bias": True,
            "mlp_bias": True,
        },
    ),
    (
        "deepseek-v3",
        "deepseek_v3",
        {
            **LLAMA,
            **MOE,
            **MLA,
            "q_lora_rank": 24,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "n_group": 2,
            "topk_group": 1,
        },
    ),
    (
        "deepseek-v3-no-shared",
        "deepseek_v3",
        {
            **LLAMA,
            **MOE,
            **MLA,
            "q_lora_rank": None,
            "n_routed_experts": 4,
            "n_shared_experts": 0,
            "first_k_dense_replace": 0,
            "n_group": 2,
            "topk_group": 1,
        },
    ),
]

# transformers parameter name -> ParamBreakdown field, first match wins. Norm modules inside attention
# (q/k norms, MLA's latent norms) are attention, as in specs.model.Group.
GROUP_PATTERNS: list[tuple[str, str]] = [
    (r"(^|\.)(q_norm|k_norm|q_a_layernorm|kv_a_layernorm)\.", "attention"),
    (r"(^|\.)(wpe|embed_positions)\.", "position"),
    (r"(^|\.)(wte|embed_tokens|word_embeddings|embed_in|project_in)\.", "embedding"),
    (r"(^|\.)(lm_head|project_out)\.", "lm_head"),
    (r"(^|\.)(\w*norm\w*|ln_\w+)\.(weight|bias)$", "norm"),
    (r"\.mlp\.gate\.(weight|e_score_correction_bias)$", "router"),
    (r"\.mlp\.experts\.", "routed_experts"),
    (r"\.mlp\.shared_expert", "shared_experts"),
    (r"\.(self_attn|attn|attention|self_attention)\.", "attention"),
    (r"\.(mlp|ffn|fc1|fc2)(\.|$)", "mlp"),
]


def _group_of(name: str) -> str:
    for pattern, group in GROUP_PATTERNS:
        if re.search(pattern, name):
            return group
    raise AssertionError(f"no group for transformers parameter {name}")


def _meta_model(model_type: str, config: dict):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CONFIG_MAPPING[model_type](**config)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


def _weights(model) -> dict[str, int]:
    """Every parameter, once (tied ones once), by name."""
    return {name: p.numel() for name, p in model.named_parameters()}


def _by_group(weights: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for name, n in weights.items():
        group = _group_of(name)
        totals[group] = totals.get(group, 0) + n
    return {k: v for k, v in totals.items() if v}


def _ours_by_group(breakdown: ParamBreakdown) -> dict[str, int]:
    return {k: v for k, v in breakdown.components().items() if v}


@pytest.mark.trace
def test_matrix_covers_every_native_model_type():
    transformers = pytest.importorskip("transformers")
    native = {t for t in ADAPTERS if t in transformers.CONFIG_MAPPING}
    assert native == {model_type for _, model_type, _ in CASES}


@pytest.mark.trace
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize(("model_type", "config"), [pytest.param(t, c, id=i) for i, t, c in CASES])
def test_small_config_matches_transformers_exactly(model_type: str, config: dict):
    model = _meta_model(model_type, config)
    weights = _weights(model)
    spec = parse_config({"model_type": model_type, **config}, f"case {model_type}")
    ours = count_params(spec)
    assert ours.total == sum(weights.values())
    assert _ours_by_group(ours) == _by_group(weights)
    assert spec.native_transformers


@pytest.mark.trace
def test_deepseek_v3_correction_bias_is_a_buffer_not_a_parameter():
    """transformers keeps `e_score_correction_bias` as a buffer; the parameter count leaves it out like it."""
    _, model_type, config = next(c for c in CASES if c[0] == "deepseek-v3")
    model = _meta_model(model_type, config)
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in dict(model.named_buffers())
    spec = parse_config({"model_type": model_type, **config}, "deepseek-v3 case")
    assert count_params(spec).total == sum(p.numel() for p in model.parameters())


def _catalog_entries() -> list[dict]:
    folder = resources.files("llmplan.catalog").joinpath("models")
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in folder.iterdir() if p.name.endswith(".json")]


def _is_native(entry: dict) -> bool:
    return parse_config(entry["config"], entry["id"]).native_transformers


def _native_entries() -> list[dict]:
    return [e for e in _catalog_entries() if _is_native(e)]


def _remote_entries() -> list[dict]:
    return [e for e in _catalog_entries() if not _is_native(e)]


def _hf_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("model_type", "auto_map", "quantization_config")}


@pytest.mark.trace
@pytest.mark.parametrize("entry", _native_entries() or [None], ids=lambda e: e["id"] if e else "empty")
def test_catalog_native_full_size_matches_transformers(entry: dict | None):
    if entry is None:
        pytest.skip("the model catalog is empty")
    config = entry["config"]
    model_type = config["model_type"]
    if model_type == "gemma3" and isinstance(config.get("text_config"), dict):
        model_type, config = "gemma3_text", config["text_config"]
    model = _meta_model(model_type, _hf_config(config))
    weights = _weights(model)
    ours = count_params(parse_config(entry["config"], entry["id"]))
    assert ours.total == sum(weights.values())
    assert _ours_by_group(ours) == _by_group(weights)


def _stated_precision(value: int) -> int:
    """One unit of the last non-zero digit of a published count: 6.2B -> 0.1B, 13B -> 1B.

    Model cards round and sometimes truncate (Baichuan2-13B has 13.9B), so a count within one unit of the
    last stated digit agrees with the published figure.
    """
    unit = 1
    while value % (unit * 10) == 0:
        unit *= 10
    return unit


@pytest.mark.parametrize("entry", _remote_entries() or [None], ids=lambda e: e["id"] if e else "empty")
def test_catalog_remote_code_matches_published_count(entry: dict | None):
    if entry is None:
        pytest.skip("the model catalog has no remote-code entry")
    published = entry["published_params"]
    spec = parse_config(entry["config"], entry["id"])
    assert not spec.native_transformers
    tolerance = published.get("tolerance", _stated_precision(published["value"]))
    assert abs(count_params(spec).total - published["value"]) <= tolerance


# Exact counts of remote-code models as printed by `sum(p.numel() for p in model.parameters())` (or peft's
# `print_trainable_parameters`, "all params: ...") after loading the published checkpoint with
# trust_remote_code, quoted in public repositories and blog posts. Tolerance: zero.
REMOTE_EXACT = [
    ("chatglm-6b", 6_173_286_400),
    ("chatglm2-6b", 6_243_584_000),
    ("chatglm3-6b", 6_243_584_000),
    ("internlm2-7b", 7_737_708_544),
    ("internlm2-20b", 19_861_149_696),
]


@pytest.mark.parametrize(("model_id", "expected"), REMOTE_EXACT)
def test_remote_code_exact_reference_counts(model_id: str, expected: int):
    try:
        entry = catalog.model_entry(model_id)
    except UnknownIdError:
        pytest.skip(f"{model_id} is not in the catalog")
    assert count_params(parse_config(entry.config, model_id)).total == expected


def test_deepseek_moe_layer_freq_follows_deepseek_modeling():
    """DeepSeek's own modeling file makes layer i sparse when i >= first_k_dense_replace and
    i % moe_layer_freq == 0; transformers v5 ignores `moe_layer_freq` (every published config sets 1)."""
    _, model_type, config = next(c for c in CASES if c[0] == "deepseek-v2-lite")
    spec = parse_config(
        {"model_type": model_type, **config, "num_hidden_layers": 6, "moe_layer_freq": 2}, "case"
    )
    assert [block.moe for block in spec.layers] == [False, False, True, False, True, False]
