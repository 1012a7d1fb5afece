"""Facts every adapter sets the same way from its config: peft 0.21's defaults for the model type and the
dropout probabilities. `parse_config` applies them to the adapter's ModelSpec, so that formulas read typed
fields (`ModelSpec.peft_defaults`, `ModelSpec.dropout`) and never a model type or a config key.
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.adapters._config import ConfigView
from llmplan.specs.model import ActivationImpl, Dropout, ModelSpec, PeftDefaults
from llmplan.specs.peft_defaults import (
    IA3_DEFAULTS,
    KV_HEAD_CONFIGS,
    LN_TUNING_DEFAULTS,
    MOE_CONVERSION_PATTERN,
)

ACTIVATION_IMPLS = {impl.value: impl for impl in ActivationImpl if impl is not ActivationImpl.KERNEL}
"""`hidden_act` names whose transformers implementation is a Python composition (transformers/activations.py
ACT2CLS: gelu_new, gelu_fast, quick_gelu); every other name runs one kernel."""


def _dropout(cfg: ConfigView, *keys: str) -> float:
    """The first of `keys` the config holds as a number, else 0 (transformers' config defaults are 0 for the
    families parsed here, but GPT-2's 0.1, which its configs state)."""
    for key in keys:
        value = cfg.data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def with_common_facts(spec: ModelSpec, cfg: ConfigView) -> ModelSpec:
    """`spec` with its peft defaults and dropout probabilities read from the model type and the config."""
    model_type = spec.model_type
    ia3 = IA3_DEFAULTS.get(model_type)
    peft = PeftDefaults(
        ia3_targets=ia3[0] if ia3 else None,
        ia3_feedforward=ia3[1] if ia3 else (),
        ln_tuning_targets=LN_TUNING_DEFAULTS.get(model_type),
        prefix_kv_heads=model_type in KV_HEAD_CONFIGS or "num_key_value_heads" in cfg.data,
        moe_lora_conversion=MOE_CONVERSION_PATTERN.get(model_type),
    )
    dropout = Dropout(
        attention=_dropout(cfg, "attention_dropout", "attn_pdrop"),
        residual=_dropout(cfg, "resid_pdrop", "hidden_dropout"),
        embedding=_dropout(cfg, "embd_pdrop"),
    )
    activation = ACTIVATION_IMPLS.get(spec.hidden_act, ActivationImpl.KERNEL)
    return replace(spec, peft_defaults=peft, dropout=dropout, activation_impl=activation)
