"""Config adapters: HF `config.json` (as data) -> ModelSpec, one function per family.

`parse_config` dispatches on `model_type`. Configs are never executed: remote-code families (ChatGLM, Baichuan,
InternLM2) are parsed from the keys their published configs hold, following their modeling files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmplan.adapters import (
    baichuan,
    bloom,
    chatglm,
    deepseek,
    falcon,
    gpt2,
    gpt_bigcode,
    gpt_neox,
    gptj,
    internlm2,
    llama,
    mpt,
    nemotron,
    opt,
    qwen,
    starcoder2,
)
from llmplan.adapters._config import ConfigView, _kind
from llmplan.adapters._facts import with_common_facts
from llmplan.errors import SpecError, UnsupportedModelError
from llmplan.specs.model import ModelSpec

Adapter = Callable[[ConfigView], ModelSpec]

ADAPTERS: dict[str, Adapter] = {
    "llama": llama.llama,
    "mistral": llama.llama,
    "qwen2": llama.llama,
    "qwen3": llama.llama,
    "mixtral": llama.mixtral,
    "qwen2_moe": llama.qwen_moe,
    "qwen3_moe": llama.qwen_moe,
    "gemma": llama.gemma,
    "gemma2": llama.gemma,
    "gemma3_text": llama.gemma,
    "phi3": llama.phi3,
    "glm": llama.glm,
    "glm4": llama.glm,
    "qwen": qwen.qwen,
    "gpt_bigcode": gpt_bigcode.gpt_bigcode,
    "gpt2": gpt2.gpt2,
    "opt": opt.opt,
    "bloom": bloom.bloom,
    "falcon": falcon.falcon,
    "gpt_neox": gpt_neox.gpt_neox,
    "gptj": gptj.gptj,
    "starcoder2": starcoder2.starcoder2,
    "deepseek_v2": deepseek.deepseek,
    "deepseek_v3": deepseek.deepseek,
    "chatglm": chatglm.chatglm,
    "baichuan": baichuan.baichuan,
    "internlm2": internlm2.internlm2,
    "mpt": mpt.mpt,
    "nemotron": nemotron.nemotron,
}


def register(model_types: tuple[str, ...], adapter: Adapter) -> None:
    for model_type in model_types:
        ADAPTERS[model_type] = adapter


def supported_model_types() -> list[str]:
    return sorted(ADAPTERS)


def parse_config(config: Mapping[str, Any], source: str) -> ModelSpec:
    """Build the ModelSpec of a config dict; `source` names where it came from, for error messages.

    Every field is checked as it is read (`ConfigView`); the built spec is checked once more for rules across
    fields (`checked_spec`). An adapter that trips over a value of an unexpected shape raises ConfigShapeError
    naming the model type, never a bare TypeError.
    """
    if not isinstance(config, Mapping):
        raise SpecError("config", f"{source} does not hold a JSON object (allowed: an object)")
    model_type = config.get("model_type")
    if model_type is None:
        raise SpecError(
            "model_type", f"missing from {source}; one of {', '.join(supported_model_types())} is required"
        )
    prefix = ""
    if model_type == "gemma3" and isinstance(config.get("text_config"), Mapping):
        config = {"model_type": "gemma3_text", **config["text_config"]}
        model_type, prefix = "gemma3_text", "text_config."
    if not isinstance(model_type, str):
        raise SpecError(
            "model_type",
            f"{_kind(model_type)} in {source} is not a string (allowed: {', '.join(supported_model_types())})",
        )
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise UnsupportedModelError(
            f"model_type: {_kind(model_type)} in {source} is not supported "
            f"(allowed: {', '.join(supported_model_types())})"
        )
    view = ConfigView(config, source, prefix)
    try:
        spec = with_common_facts(adapter(view), view)
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        ZeroDivisionError,
        OverflowError,
    ) as exc:
        if isinstance(exc, SpecError):
            raise
        raise ConfigShapeError(model_type, source, exc) from None
    return checked_spec(spec, prefix)


def checked_spec(spec: ModelSpec, prefix: str = "") -> ModelSpec:
    """Rules across fields that no single key can break: experts per token <= experts, kv heads <= heads,
    dropout probabilities in [0, 1)."""
    moe = spec.moe
    if moe is not None and moe.experts_per_token > moe.num_experts:
        raise SpecError(
            f"{prefix}num_experts_per_tok",
            f"{moe.experts_per_token} in {spec.name} exceeds the {moe.num_experts} experts "
            f"(allowed: 1 to {moe.num_experts})",
        )
    if spec.num_key_value_heads > spec.num_attention_heads:
        raise SpecError(
            f"{prefix}num_key_value_heads",
            f"{spec.num_key_value_heads} in {spec.name} exceeds the {spec.num_attention_heads} attention heads "
            f"(allowed: 1 to {spec.num_attention_heads})",
        )
    dropout = getattr(spec, "dropout", None)
    for name in ("attention", "residual", "embedding"):
        p = getattr(dropout, name, 0.0)
        if not 0 <= p < 1:
            raise SpecError(
                f"{prefix}{name} dropout", f"{p} in {spec.name} is out of range (allowed: 0 <= p < 1)"
            )
    return spec


class ConfigShapeError(SpecError):
    """A config value of a shape the family's adapter does not expect (e.g. a list where a number belongs)."""

    def __init__(self, model_type: str, source: str, exc: Exception) -> None:
        super().__init__(
            "config",
            f"{source} holds a value of an unexpected shape for model_type {model_type} "
            f"({type(exc).__name__}: {str(exc)[:120]}) (allowed: the types of a published {model_type} config)",
        )
