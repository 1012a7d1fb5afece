"""peft 0.21's per-model-type defaults, as data (peft/utils/constants.py and
peft/utils/transformers_weight_conversion.py). The adapters turn them into `ModelSpec.peft_defaults`; formulas
read that typed field, never these tables by model type."""

from __future__ import annotations

from llmplan.specs.model import MoeLoraConversion

# peft/utils/constants.py TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING and
# TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING (peft 0.21), for the model types llmplan parses.
# (targets, feedforward targets): a feedforward target scales its input features, the others their outputs.
IA3_DEFAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gpt2": (("c_attn", "mlp.c_proj"), ("mlp.c_proj",)),
    "bloom": (("query_key_value", "mlp.dense_4h_to_h"), ("mlp.dense_4h_to_h",)),
    "opt": (("q_proj", "k_proj", "fc2"), ("fc2",)),
    "gptj": (("q_proj", "v_proj", "fc_out"), ("fc_out",)),
    "gpt_neox": (("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)),
    "gpt_bigcode": (("c_attn", "mlp.c_proj"), ("mlp.c_proj",)),
    "llama": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mistral": (("k_proj", "v_proj", "down_proj"), ("down_proj",)),
    "mixtral": (("k_proj", "v_proj", "w2"), ("w2",)),
    "falcon": (("query_key_value", "dense_4h_to_h"), ("dense_4h_to_h",)),
    "gemma": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "gemma3_text": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen2": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
    "qwen3": (("q_proj", "v_proj", "down_proj"), ("down_proj",)),
}

# peft/utils/constants.py TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING (peft 0.21): the norm modules
# LN tuning copies and trains. Note qwen2 / qwen3 train post_attention_layernorm only.
LN_TUNING_DEFAULTS: dict[str, tuple[str, ...]] = {
    "llama": ("input_layernorm", "post_attention_layernorm", "norm"),
    "mistral": ("input_layernorm", "post_attention_layernorm", "norm"),
    "gemma": ("input_layernorm", "post_attention_layernorm", "norm"),
    "gemma2": (
        "input_layernorm",
        "post_attention_layernorm",
        "pre_feedforward_layernorm",
        "post_feedforward_layernorm",
        "norm",
    ),
    "gemma3_text": (
        "input_layernorm",
        "post_attention_layernorm",
        "pre_feedforward_layernorm",
        "post_feedforward_layernorm",
        "norm",
    ),
    "qwen2": ("post_attention_layernorm",),
    "qwen3": ("post_attention_layernorm",),
    "bloom": ("input_layernorm", "post_attention_layernorm", "ln_f"),
    "gpt2": ("ln_1", "ln_2", "ln_f"),
    "gptj": ("ln_1", "ln_f"),
    "falcon": ("input_layernorm", "post_attention_layernorm", "ln_f"),
}

# Model types whose transformers v5 config class always has `num_key_value_heads` (so that peft's prefix
# tuning sizes its prefixes by the KV heads); checked against transformers in tests/test_peft_counts.py.
# Remote-code configs count when their config.json has the key.
KV_HEAD_CONFIGS = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
        "glm",
        "glm4",
        "starcoder2",
        "deepseek_v2",
        "deepseek_v3",
        "gpt_bigcode",
        "nemotron",
    }
)


# peft/utils/transformers_weight_conversion.py (peft 0.21) `_MODEL_TO_CONVERSION_PATTERN`: mixtral -> mixtral;
# qwen3_moe, deepseek_v2, deepseek_v3 -> qwen2_moe; qwen2_moe itself has no pattern and is not converted.
MOE_CONVERSION_PATTERN: dict[str, MoeLoraConversion] = {
    "mixtral": MoeLoraConversion.MIXTRAL,
    "qwen3_moe": MoeLoraConversion.QWEN2_MOE,
    "deepseek_v2": MoeLoraConversion.QWEN2_MOE,
    "deepseek_v3": MoeLoraConversion.QWEN2_MOE,
}
