"""The peft adapter_config.json of a fine-tuning plan, and the reverse: an adapter_config.json read back.

The keys are those of the peft config classes (peft/tuners/lora/config.py `LoraConfig`,
prompt_tuning/config.py `PromptTuningConfig`, prefix_tuning/config.py `PrefixTuningConfig`,
p_tuning/config.py `PromptEncoderConfig`), written as `save_pretrained` writes them (with `peft_type`), so that
`CONFIG_CLASSES[peft_type](**without peft_type)` rebuilds the config:
- LoRA / QLoRA / DoRA: `r`, `lora_alpha`, `lora_dropout`, `target_modules` ("all-linear" or the module names),
  `use_dora`, `bias` "none" (the estimate trains no bias), `task_type` CAUSAL_LM. QLoRA's 4-bit base is the
  model's quantization config (bitsandbytes), not the adapter's: its adapter config is LoRA's;
- prompt tuning, prefix tuning / p-tuning v2, p-tuning: `num_virtual_tokens`, and `encoder_hidden_size` /
  `prefix_projection` where the method has them.

Refused: AdaLoRA (its `total_step` is the run's step count, which a plan does not know), IA3 (peft picks its
targets per model type), adapters, BitFit, LayerNorm tuning, freezing and full training (no peft config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmplan.emit import EmitError, LaunchConfig, read_error
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Method, TrainingJob

TARGET = "peft"
TASK_TYPE = "CAUSAL_LM"

_LORA = (Method.LORA, Method.QLORA, Method.DORA)
_PEFT_TYPES = {
    Method.LORA: "LORA",
    Method.QLORA: "LORA",
    Method.DORA: "LORA",
    Method.PROMPT: "PROMPT_TUNING",
    Method.PREFIX: "PREFIX_TUNING",
    Method.PTUNING_V2: "PREFIX_TUNING",
    Method.PTUNING: "P_TUNING",
}
CONFIG_CLASSES = {
    "LORA": "LoraConfig",
    "PROMPT_TUNING": "PromptTuningConfig",
    "PREFIX_TUNING": "PrefixTuningConfig",
    "P_TUNING": "PromptEncoderConfig",
}
"""peft_type -> the peft class that takes the rest of the keys."""


def config(spec: ModelSpec, job: TrainingJob) -> dict[str, Any]:
    """The adapter config dict of the plan (module docstring for the keys)."""
    method, p = job.method, job.peft
    if method not in _PEFT_TYPES:
        raise EmitError(
            TARGET,
            "method",
            f"{method.value} has no peft config written by llmplan (allowed: "
            f"{', '.join(m.value for m in _PEFT_TYPES)})",
        )
    out: dict[str, Any] = {"peft_type": _PEFT_TYPES[method], "task_type": TASK_TYPE}
    if method in _LORA:
        targets = "all-linear" if p.lora_targets == ("all-linear",) else list(p.lora_targets)
        return out | {
            "r": p.lora_rank,
            "lora_alpha": p.lora_alpha,
            "lora_dropout": p.lora_dropout,
            "target_modules": targets,
            "use_dora": method is Method.DORA,
            "bias": "none",
        }
    out["num_virtual_tokens"] = p.num_virtual_tokens
    if method is Method.PROMPT:
        return out
    out["encoder_hidden_size"] = p.encoder_hidden_size or spec.hidden_size
    if method in (Method.PREFIX, Method.PTUNING_V2):
        out["prefix_projection"] = method is Method.PREFIX and p.prefix_projection
    return out


def launch(spec: ModelSpec, job: TrainingJob) -> LaunchConfig:
    """The adapter_config.json text; a script loads it with `peft.PeftConfig.from_pretrained(folder)`."""
    text = json.dumps(config(spec, job), indent=2) + "\n"
    command = "python -c \"import peft; print(peft.PeftConfig.from_pretrained('.'))\"  # in its folder"
    return LaunchConfig(TARGET, "adapter_config.json", text, command)


@dataclass(frozen=True, kw_only=True, slots=True)
class PeftPlan:
    """What an adapter_config.json sets of a plan: `llmplan train` option values (None: not set)."""

    method: Method
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: str | None = None
    lora_dropout: float | None = None
    num_virtual_tokens: int | None = None


def read(data: object, path: str, method: Method, hidden_size: int) -> PeftPlan:
    """The plan fields of an adapter_config.json. `method` is the one given on the command line: a LoRA config
    with `--method qlora` stays QLoRA (the 4-bit base is not in the adapter config). SpecError naming the key
    that cannot be read."""
    if not isinstance(data, dict):
        raise read_error(path, "(top level)", "is not a JSON object (allowed: an adapter_config.json)")
    kind = data.get("peft_type")
    if kind not in CONFIG_CLASSES:
        raise read_error(path, "peft_type", f"{kind!r} is not read (allowed: {', '.join(CONFIG_CLASSES)})")
    if kind == "LORA":
        use_dora = data.get("use_dora", False)
        if use_dora:
            found = Method.DORA
        else:
            found = Method.QLORA if method is Method.QLORA else Method.LORA
        if data.get("bias", "none") != "none":
            raise read_error(path, "bias", f"{data['bias']!r} is not modelled (allowed: none)")
        targets = data.get("target_modules")
        if isinstance(targets, str) and targets == "all-linear":
            names = "all-linear"
        elif isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
            names = ",".join(targets)
        else:
            raise read_error(
                path, "target_modules", f"{targets!r} is not read (allowed: all-linear or a list)"
            )
        return PeftPlan(
            method=found,
            lora_rank=_number(data, "r", path, int),
            lora_alpha=float(_number(data, "lora_alpha", path, float)),
            lora_targets=names,
            lora_dropout=float(_number(data, "lora_dropout", path, float, default=0.0)),
        )
    found = {"PROMPT_TUNING": Method.PROMPT, "P_TUNING": Method.PTUNING}.get(kind)
    if kind == "PREFIX_TUNING":
        if data.get("prefix_projection", False):
            raise read_error(
                path, "prefix_projection", "true is not a `llmplan train` option (allowed: false)"
            )
        found = Method.PREFIX if method is Method.PREFIX else Method.PTUNING_V2
    if kind != "PROMPT_TUNING":
        width = data.get("encoder_hidden_size") or hidden_size
        if width != hidden_size:
            raise read_error(
                path,
                "encoder_hidden_size",
                f"{width!r} is not the model's hidden size {hidden_size} (allowed: it)",
            )
    assert found is not None
    return PeftPlan(method=found, num_virtual_tokens=_number(data, "num_virtual_tokens", path, int))


def _number(data: dict[str, Any], key: str, path: str, kind: type, default: float | None = None) -> Any:
    value = data.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok:
        raise read_error(path, key, f"{value!r} is not {'an integer' if kind is int else 'a number'}")
    return value
