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
from llmplan.adapters._config import ConfigView
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
    """Build the ModelSpec of a config dict; `source` names where it came from, for error messages."""
    if not isinstance(config, Mapping):
        raise SpecError("config", f"{source} does not hold a JSON object")
    model_type = config.get("model_type")
    if model_type is None:
        raise SpecError(
            "model_type", f"missing from {source}; one of {', '.join(supported_model_types())} is required"
        )
    if model_type == "gemma3" and isinstance(config.get("text_config"), Mapping):
        config = {"model_type": "gemma3_text", **config["text_config"]}
        model_type = "gemma3_text"
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise UnsupportedModelError(
            f"model_type {model_type!r} in {source} is not supported; supported: {', '.join(supported_model_types())}"
        )
    view = ConfigView(config, source)
    return with_common_facts(adapter(view), view)
