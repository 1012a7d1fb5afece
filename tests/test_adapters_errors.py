"""Malformed configs: every adapter rejects bad input with an LlmplanError whose message names the key."""

from __future__ import annotations

import pytest

from llmplan.adapters import parse_config, supported_model_types
from llmplan.errors import LlmplanError, SpecError, UnsupportedModelError

LLAMA = {
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
GPT2 = {"model_type": "gpt2", "vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}
OPT = {
    "model_type": "opt",
    "vocab_size": 96,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "ffn_dim": 64,
}
BLOOM = {"model_type": "bloom", "vocab_size": 96, "hidden_size": 32, "n_layer": 2, "n_head": 4}
FALCON = {
    "model_type": "falcon",
    "vocab_size": 96,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
NEOX = {**OPT, "model_type": "gpt_neox", "intermediate_size": 64}
GPTJ = {**GPT2, "model_type": "gptj"}
STARCODER2 = {**LLAMA, "model_type": "starcoder2"}
DEEPSEEK_V3 = {
    **LLAMA,
    "model_type": "deepseek_v3",
    "moe_intermediate_size": 16,
    "num_experts_per_tok": 2,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 16,
    "q_lora_rank": 24,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 4,
    "v_head_dim": 8,
}
CHATGLM2 = {
    "model_type": "chatglm",
    "padded_vocab_size": 96,
    "hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 4,
    "kv_channels": 8,
    "ffn_hidden_size": 48,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
}
CHATGLM1 = {
    "model_type": "chatglm",
    "vocab_size": 96,
    "hidden_size": 32,
    "num_layers": 2,
    "num_attention_heads": 4,
    "inner_hidden_size": 64,
    "position_encoding_2d": True,
}
BAICHUAN = {**LLAMA, "model_type": "baichuan"}
INTERNLM2 = {**LLAMA, "model_type": "internlm2", "bias": False}

VALID = [
    LLAMA,
    GPT2,
    OPT,
    BLOOM,
    FALCON,
    NEOX,
    GPTJ,
    STARCODER2,
    DEEPSEEK_V3,
    CHATGLM2,
    CHATGLM1,
    BAICHUAN,
    INTERNLM2,
]


def _without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


def _raises_naming(config: dict, key: str) -> LlmplanError:
    with pytest.raises(LlmplanError) as info:
        parse_config(config, "test-config")
    assert key in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "config", VALID, ids=lambda c: c["model_type"] + ("-v1" if "inner_hidden_size" in c else "")
)
def test_the_valid_bases_parse(config: dict):
    assert parse_config(config, "test-config").num_hidden_layers == 2


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (_without(LLAMA, "hidden_size"), "hidden_size"),
        (_without(LLAMA, "vocab_size"), "vocab_size"),
        (_without(GPT2, "n_embd"), "n_embd"),
        (_without(OPT, "ffn_dim"), "ffn_dim"),
        (_without(BLOOM, "n_head"), "n_head"),
        (_without(FALCON, "num_hidden_layers"), "num_hidden_layers"),
        (_without(NEOX, "intermediate_size"), "intermediate_size"),
        (_without(DEEPSEEK_V3, "kv_lora_rank"), "kv_lora_rank"),
        (_without(DEEPSEEK_V3, "n_routed_experts"), "n_routed_experts"),
        (_without(CHATGLM2, "ffn_hidden_size"), "ffn_hidden_size"),
        (_without(CHATGLM1, "vocab_size"), "vocab_size"),
        (_without(INTERNLM2, "num_attention_heads"), "num_attention_heads"),
    ],
)
def test_missing_required_field(config: dict, key: str):
    err = _raises_naming(config, key)
    assert isinstance(err, SpecError)
    assert err.field == key
    assert "missing" in str(err)


@pytest.mark.parametrize(
    ("config", "key", "value"),
    [
        (LLAMA, "hidden_size", 0),
        (LLAMA, "num_hidden_layers", -2),
        (GPT2, "n_head", 0),
        (OPT, "ffn_dim", -64),
        (BLOOM, "hidden_size", 0),
        (FALCON, "ffn_hidden_size", 0),
        (STARCODER2, "intermediate_size", 0),
        (DEEPSEEK_V3, "moe_intermediate_size", 0),
        (DEEPSEEK_V3, "first_k_dense_replace", -1),
        (CHATGLM2, "kv_channels", 0),
        (BAICHUAN, "vocab_size", -1),
    ],
)
def test_zero_or_negative_size(config: dict, key: str, value: int):
    err = _raises_naming({**config, key: value}, key)
    assert isinstance(err, SpecError)
    assert "out of range" in str(err)


@pytest.mark.parametrize(
    ("config", "key", "bad"),
    [
        (LLAMA, "hidden_size", {"hidden_size": 30}),
        (GPT2, "n_embd", {"n_embd": 30}),
        (OPT, "hidden_size", {"hidden_size": 30}),
        (BLOOM, "hidden_size", {"hidden_size": 30}),
        (FALCON, "hidden_size", {"hidden_size": 30}),
        (NEOX, "hidden_size", {"hidden_size": 30}),
        (GPTJ, "n_embd", {"n_embd": 30}),
        (CHATGLM1, "hidden_size", {"hidden_size": 30}),
        (INTERNLM2, "hidden_size", {"hidden_size": 30}),
    ],
)
def test_heads_not_dividing_hidden(config: dict, key: str, bad: dict):
    err = _raises_naming({**config, **bad}, key)
    assert "not divisible" in str(err)


@pytest.mark.parametrize(
    ("config", "bad", "keys"),
    [
        (LLAMA, {"num_key_value_heads": 3}, ("num_attention_heads", "num_key_value_heads")),
        (STARCODER2, {"num_key_value_heads": 3}, ("num_attention_heads", "num_key_value_heads")),
        (INTERNLM2, {"num_key_value_heads": 3}, ("num_attention_heads", "num_key_value_heads")),
        (
            FALCON,
            {"new_decoder_architecture": True, "num_kv_heads": 3},
            ("num_attention_heads", "num_kv_heads"),
        ),
        (CHATGLM2, {"multi_query_group_num": 3}, ("num_attention_heads", "multi_query_group_num")),
    ],
)
def test_kv_heads_not_dividing_heads(config: dict, bad: dict, keys: tuple[str, str]):
    err = _raises_naming({**config, **bad}, keys[0])
    assert keys[1] in str(err)


def test_unknown_model_type_lists_the_supported_ones():
    with pytest.raises(UnsupportedModelError) as info:
        parse_config({**LLAMA, "model_type": "mamba"}, "test-config")
    message = str(info.value)
    assert "model_type" in message and "'mamba'" in message
    for model_type in supported_model_types():
        assert model_type in message


def test_missing_model_type_lists_the_supported_ones():
    err = _raises_naming(_without(LLAMA, "model_type"), "model_type")
    assert "gpt2" in str(err) and "deepseek_v3" in str(err)


@pytest.mark.parametrize("value", ["4096", 32.5, True, [32], {"value": 32}])
@pytest.mark.parametrize("config", [LLAMA, OPT, FALCON, NEOX, STARCODER2, DEEPSEEK_V3, BAICHUAN, INTERNLM2])
def test_non_integer_size(config: dict, value: object):
    err = _raises_naming({**config, "hidden_size": value}, "hidden_size")
    assert "not an integer" in str(err)


@pytest.mark.parametrize(
    ("config", "key"),
    [(GPT2, "n_layer"), (BLOOM, "n_layer"), (CHATGLM2, "num_layers"), (CHATGLM1, "inner_hidden_size")],
)
def test_non_integer_size_under_family_specific_keys(config: dict, key: str):
    err = _raises_naming({**config, key: "28"}, key)
    assert "not an integer" in str(err)


def test_integral_float_is_accepted():
    assert parse_config({**LLAMA, "hidden_size": 32.0}, "test-config").hidden_size == 32


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (OPT, "enable_bias"),
        (FALCON, "new_decoder_architecture"),
        (NEOX, "use_parallel_residual"),
        (STARCODER2, "use_bias"),
        (CHATGLM2, "multi_query_attention"),
        (INTERNLM2, "bias"),
    ],
)
def test_non_boolean_flag(config: dict, key: str):
    err = _raises_naming({**config, key: "yes"}, key)
    assert "not true or false" in str(err)


def test_chatglm_without_generation_keys_is_rejected():
    config = {"model_type": "chatglm", "hidden_size": 32, "num_layers": 2, "num_attention_heads": 4}
    err = _raises_naming(config, "model_type")
    assert "inner_hidden_size" in str(err) and "padded_vocab_size" in str(err)


def test_gpt2_cross_attention_is_rejected():
    err = _raises_naming({**GPT2, "add_cross_attention": True}, "add_cross_attention")
    assert "decoder-only" in str(err)
