"""Trainable-parameter counts of full training and every PEFT method, equal to what `peft` reports.

`trainable_params(model, job)` splits the parameters of a fine-tuning job into the base-model parameters that
receive gradients, the parameters the method adds, and the frozen base parameters. For the methods peft
implements, `total` equals peft 0.21's `PeftModel.get_nb_trainable_parameters()[0]` (the sum of `numel` over
parameters with `requires_grad`, peft/peft_model.py `get_nb_trainable_parameters`), checked exactly in
tests/test_peft_counts.py against peft applied to transformers models built from the same configs.

Behaviour of peft 0.21 mirrored here (paths under site-packages/peft/):
- target matching (tuners/tuners_utils.py `check_target_module_exists`): a list entry matches a module whose
  name equals it or ends with "." + it; matched against modules, never against parameters;
- "all-linear" (tuners/tuners_utils.py `_maybe_include_all_linear_layers`): every `nn.Linear` / `Conv1D`
  module except the output embedding (the head);
- MoE in transformers v5: the routed experts are fused 3-D `nn.Parameter`s inside one `experts` module and the
  router (`mlp.gate`) keeps a bare weight parameter, so neither is an `nn.Linear` and module targets never
  reach them; but for LoRA (and DoRA, which peft then refuses) on mixtral, qwen3_moe, deepseek_v2 and
  deepseek_v3, peft rewrites the v4 names into `target_parameters` (utils/transformers_weight_conversion.py
  `_convert_peft_config_moe`, lines 332-352 and 402-482): see `lora_target_linears`;
- prompt learning (utils/other.py `_prepare_prompt_learning_config`, lines 1151-1237): token_dim = hidden
  size; for prefix tuning on configs that have `num_key_value_heads`, token_dim = head_dim ·
  num_key_value_heads (GQA, peft issue #1901); `encoder_hidden_size` defaults to that token_dim.

Not modelled: peft's "all-linear" also adapts linears outside the decoder blocks other than the head; among the
parsed models only OPT configs with `word_embed_proj_dim != hidden_size` (opt-350m) have such layers
(project_in, project_out), which this count leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import SpecError
from llmplan.formulas.params import count_params
from llmplan.specs.model import Group, Linear, ModelSpec, MoeLoraConversion, Role
from llmplan.specs.peft_defaults import IA3_DEFAULTS
from llmplan.specs.training import Method, PeftSpec, TrainingJob

LORA_FAMILY = frozenset({Method.LORA, Method.QLORA, Method.DORA, Method.ADALORA})
"""Methods whose adapters sit on linear layers (A: r × in, B: out × r, and their variants)."""
ALL_LINEAR = "all-linear"
"""peft's shorthand for every linear layer but the head (peft/utils/constants.py INCLUDE_LINEAR_LAYERS_SHORTHAND)."""


@dataclass(frozen=True, slots=True)
class TrainableParams:
    """Parameters of a fine-tuning job: what receives gradients and what stays frozen."""

    base_trainable: int
    """Base-model parameters that receive gradients (FULL: all; BITFIT: biases; FREEZE: the unfrozen part)."""
    adapter: int
    """Trainable parameters the method adds (LoRA A and B, DoRA magnitudes, IA3 vectors, prompts, adapters,
    LN tuning's norm copies)."""
    frozen: int
    """Base-model parameters without gradients; frozen + base_trainable is the base model's count."""

    @property
    def total(self) -> int:
        """Trainable parameters: base_trainable + adapter (peft's `trainable params`)."""
        return self.base_trainable + self.adapter


def is_nn_linear(linear: Linear) -> bool:
    """Whether transformers v5 builds this layer as an `nn.Linear` (or GPT-2's `Conv1D`) that peft can target.

    Routed experts are fused 3-D parameters of one `experts` module and MoE routers hold a bare weight
    parameter (transformers v5 `modeling_mixtral.py` MixtralExperts / MixtralTopKRouter and their copies in
    qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3); every other Linear of the inventory is an nn.Linear.
    """
    return linear.group not in (Group.ROUTED_EXPERTS, Group.ROUTER)


def _matches(name: str, target: str) -> bool:
    """peft's rule for a list entry: the module name equals the target or ends with "." + target."""
    return name == target or name.endswith("." + target)


# peft/utils/transformers_weight_conversion.py (peft 0.21) `_MOE_TARGET_MODULE_MAPPING`: for the MoE families
# whose modules transformers v5 fused, peft's LoRA rewrites v4 module names into `target_parameters`, keyed by
# the conversion pattern of the model type (`_MODEL_TO_CONVERSION_PATTERN`: mixtral -> mixtral; qwen3_moe,
# deepseek_v2, deepseek_v3 -> qwen2_moe; qwen2_moe itself has no pattern and is not converted).
MOE_CONVERSION: dict[MoeLoraConversion, dict[str, str]] = {
    MoeLoraConversion.MIXTRAL: {
        "gate": "gate.weight",
        "w1": "gate_up_proj",
        "w3": "gate_up_proj",
        "w2": "down_proj",
    },
    MoeLoraConversion.QWEN2_MOE: {
        "gate": "gate.weight",
        "gate_proj": "gate_up_proj",
        "up_proj": "gate_up_proj",
        "down_proj": "down_proj",
    },
}
FUSED_RANK_FACTOR = 2
"""peft's `rank_pattern` for the fused gate_up_proj: r · 2 (the two v4 projections it replaces), alpha · 2."""


def _param_key(linear: Linear) -> str:
    """Name of the parameter peft's `target_parameters` matches: the fused experts' 3-D tensor is a parameter
    of the `experts` module ("mlp.experts.gate_up_proj"), the router's is "mlp.gate.weight"."""
    return linear.name if linear.group is Group.ROUTED_EXPERTS else f"{linear.name}.weight"


def _moe_conversion(
    model: ModelSpec, targets: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """peft's `_convert_peft_config_moe` for LoRA: (module targets left, parameter target -> v4 names mapped to it).

    "all-linear" resolves to the leaf names of every nn.Linear plus every v4 name of the mapping; a target equal to
    (or ending in "." +) a v4 name moves to the parameters, so dense-layer MLPs and shared experts whose leaf names
    collide with a v4 name (gate_proj, up_proj, down_proj) are no longer adapted, exactly as in peft.
    """
    mapping = MOE_CONVERSION.get(model.peft_defaults.moe_lora_conversion)
    if mapping is None:
        return targets, {}
    if targets == (ALL_LINEAR,):
        leaves = {lin.leaf_name for block in model.layers for lin in block.linears if is_nn_linear(lin)}
        targets = tuple(sorted(leaves | mapping.keys()))
    modules: list[str] = []
    params: dict[str, list[str]] = {}
    for target in targets:
        old = next((o for o in mapping if _matches(target, o)), None)
        if old is None:
            modules.append(target)
        else:
            params.setdefault(mapping[old], []).append(target)
    fused = {new: [o for o in mapping if mapping[o] == new] for new in set(mapping.values())}
    for new, olds in params.items():
        if len(fused[new]) > 1 and len(olds) < len(fused[new]):
            raise SpecError(
                "lora_targets",
                f"{', '.join(olds)} without {', '.join(o for o in fused[new] if o not in olds)}: they are fused into "
                f"{new} in transformers v5 and peft adapts them together (allowed: both or neither)",
            )
    return tuple(modules), params


def lora_target_linears(
    model: ModelSpec, targets: tuple[str, ...], *, convert_moe: bool = True
) -> list[tuple[int, Linear]]:
    """The (layer index, linear) pairs that peft adapts for `target_modules=targets`, in layer order.

    Targets are matched like peft (tuners_utils.check_target_module_exists) against the module path inside
    the decoder block ("self_attn.q_proj" matches "q_proj" and "self_attn.q_proj"). ("all-linear",) selects
    every nn.Linear of the blocks (peft also excludes the head). Routed experts and MoE routers are not
    nn.Linear in transformers v5 (see `is_nn_linear`), so module targets never reach them.

    `convert_moe` (peft's LoRA, not AdaLoRA): for mixtral, qwen3_moe, deepseek_v2 and deepseek_v3 peft 0.21 maps
    the transformers v4 names onto the fused parameters (see `MOE_CONVERSION`): "all-linear", "w1"+"w3" or
    "gate_proj"+"up_proj" adapt the fused experts' gate_up_proj, "w2"/"down_proj" their down_proj and "gate"
    the router, and those names then adapt no nn.Linear (not the dense layers' MLP, not the shared experts).

    Stricter than peft, which raises only when no target matches anything: a target that matches nothing
    raises SpecError("lora_targets"), listing the names that can be targeted (a typo otherwise silently
    trains fewer parameters).
    """
    if ALL_LINEAR in targets and targets != (ALL_LINEAR,):
        raise SpecError(
            "lora_targets",
            f"{','.join(targets)!r}: all-linear cannot be combined with module names (allowed: all-linear alone, or module names)",
        )
    modules, params = _moe_conversion(model, targets) if convert_moe else (targets, {})
    found: list[tuple[int, Linear]] = []
    for i, block in enumerate(model.layers):
        for lin in block.linears:
            if is_nn_linear(lin):
                hit = modules == (ALL_LINEAR,) or any(_matches(lin.name, t) for t in modules)
            else:
                hit = any(_matches(_param_key(lin), p) for p in params)
            if hit:
                found.append((i, lin))
    missing = [t for t in modules if t != ALL_LINEAR and not any(_matches(lin.name, t) for _, lin in found)]
    missing += [
        o for p, olds in params.items() for o in olds if not any(_matches(_param_key(x), p) for _, x in found)
    ]
    if missing and targets != (ALL_LINEAR,):
        targetable = sorted(
            {lin.leaf_name for block in model.layers for lin in block.linears if is_nn_linear(lin)}
        )
        fused = sorted({lin.name for block in model.layers for lin in block.linears if not is_nn_linear(lin)})
        hint = f"; not nn.Linear in transformers v5: {', '.join(fused)}" if fused else ""
        mapping = MOE_CONVERSION.get(model.peft_defaults.moe_lora_conversion)
        if convert_moe and mapping is not None:
            hint += f", reached by peft's LoRA through the v4 names {', '.join(mapping)}"
        raise SpecError(
            "lora_targets",
            f"{', '.join(missing)} matches no linear layer of {model.name} "
            f"(allowed: {', '.join(targetable)}, or all-linear{hint})",
        )
    return found


def lora_rank(model: ModelSpec, linear: Linear, rank: int) -> int:
    """The rank peft gives one adapted layer: `rank`, or rank · 2 for the fused experts' gate_up_proj of the
    converted MoE families (peft's `rank_pattern`, transformers_weight_conversion.py `_convert_peft_config_moe`)."""
    converted = model.peft_defaults.moe_lora_conversion is not None
    if converted and linear.group is Group.ROUTED_EXPERTS and linear.role is Role.GATE_UP:
        return rank * FUSED_RANK_FACTOR
    return rank


def lora_params(linears: list[tuple[int, Linear]], rank: int, model: ModelSpec | None = None) -> int:
    """LoRA adapter parameters: sum over adapted linears of r·(in + out) (A: r×in, B: out×r; Hu et al. 2021,
    section 4.1), per stored copy: peft's ParamWrapper on fused experts has A of (r·E)×in and B of out×(r·E)
    (tuners/lora/layer.py ParamWrapper). peft's default `bias="none"` adds no bias. Seed 003: r=4 on a 512×64
    weight: 2304 instead of 32768."""
    return sum(
        (rank if model is None else lora_rank(model, lin, rank))
        * lin.copies
        * (lin.in_features + lin.out_features)
        for _, lin in linears
    )


def dora_params(linears: list[tuple[int, Linear]], rank: int) -> int:
    """DoRA: LoRA plus one magnitude per output feature (Liu et al. 2024, eq. 5; peft tuners/lora/dora.py
    `lora_magnitude_vector` of size out_features). peft refuses DoRA on fused MoE parameters
    (tuners/lora/layer.py ParamWrapper: "does not work with use_dora=True"), and so does this."""
    fused = sorted({lin.name for _, lin in linears if not is_nn_linear(lin)})
    if fused:
        raise SpecError(
            "method",
            f"dora cannot adapt {', '.join(fused)} (fused MoE parameters; peft's ParamWrapper has no DoRA): "
            "target attention projections or use lora",
        )
    return lora_params(linears, rank) + sum(lin.out_features for _, lin in linears)


def adalora_params(linears: list[tuple[int, Linear]], init_rank: int) -> int:
    """AdaLoRA: P (lora_B, out×r), Λ (lora_E, r×1), Q (lora_A, r×in) per adapted linear: r·(in + out + 1)
    (Zhang et al. 2023, eq. 3; peft tuners/adalora/layer.py `update_layer`). The 1-element `ranknum` per layer
    is created with requires_grad=False (layer.py line 82-84), so peft does not count it as trainable; it is
    left out here. Rank pruning zeroes entries of Λ but keeps the tensors, so the count never falls."""
    return sum(init_rank * (lin.in_features + lin.out_features + 1) for _, lin in linears)


def ia3_params(model: ModelSpec) -> int:
    """IA3 (Liu et al. 2022, section 3.3): one learned vector per adapted linear, of its output size, or of its
    input size for a feed-forward target (peft tuners/ia3/layer.py `update_layer`: (out, 1) or (1, in)).

    Targets are peft's defaults per model type (`ModelSpec.peft_defaults`, set by the adapter). peft raises when none matches and ignores the
    ones that match nothing (mixtral's "w2" no longer exists in transformers v5, so only k/v are adapted).
    """
    targets, feedforward = model.peft_defaults.ia3_targets, model.peft_defaults.ia3_feedforward
    if targets is None:
        raise SpecError(
            "method",
            f"ia3 has no default target modules for model_type of {model.name} in peft 0.21 "
            f"(allowed: another method, or a model of a type peft maps: {', '.join(sorted(IA3_DEFAULTS))})",
        )
    total = 0
    for block in model.layers:
        for lin in block.linears:
            if not is_nn_linear(lin) or not any(_matches(lin.name, t) for t in targets):
                continue
            total += lin.in_features if any(_matches(lin.name, t) for t in feedforward) else lin.out_features
    return total


def prefix_token_dim(model: ModelSpec) -> int:
    """Width of one layer's key (or value) prefix as peft sizes it (utils/other.py
    `_prepare_prompt_learning_config`): hidden size, or head_dim · num_key_value_heads when the config has
    `num_key_value_heads`. For MLA configs transformers sets `head_dim = qk_rope_head_dim`, which peft reads."""
    if not model.peft_defaults.prefix_kv_heads:
        return model.hidden_size
    head_dim = model.mla.qk_rope_head_dim if model.mla is not None else model.head_dim
    return head_dim * model.num_key_value_heads


def prefix_params(model: ModelSpec, peft: PeftSpec, *, projection: bool) -> int:
    """Prefix tuning (Li & Liang 2021, section 4.3; peft tuners/prefix_tuning/model.py PrefixEncoder).

    Without projection (also P-tuning v2): an embedding of n_virtual × (L · 2 · d), d = `prefix_token_dim`.
    With projection: embedding n_virtual × d, Linear(d, E) and Linear(E, L · 2 · d) with biases,
    E = encoder_hidden_size (default d).
    """
    d = prefix_token_dim(model)
    n = peft.num_virtual_tokens
    out = model.num_hidden_layers * 2 * d
    if not projection:
        return n * out
    e = peft.encoder_hidden_size or d
    return n * d + (d * e + e) + (e * out + out)


def prompt_params(model: ModelSpec, peft: PeftSpec) -> int:
    """Prompt tuning (Lester et al. 2021): n_virtual × hidden soft-prompt embeddings (peft
    tuners/prompt_tuning/model.py PromptEmbedding; one transformer submodule for decoder-only models)."""
    return peft.num_virtual_tokens * model.hidden_size


def ptuning_params(model: ModelSpec, peft: PeftSpec) -> int:
    """P-tuning (Liu et al. 2021) with peft's default MLP reparameterization (tuners/p_tuning/model.py
    PromptEncoder): embedding n × d, then Linear(d, H), Linear(H, H), Linear(H, d), all with biases;
    d = hidden size, H = encoder_hidden_size (default d)."""
    d = model.hidden_size
    h = peft.encoder_hidden_size or d
    return peft.num_virtual_tokens * d + (d * h + h) + (h * h + h) + (h * d + d)


def bottleneck_params(model: ModelSpec, size: int, per_layer: int) -> int:
    """Bottleneck adapters: down h×a + a, up a×h + h each, `per_layer` per decoder layer.

    Houlsby et al. 2019 (section 2.1, figure 2): two per layer, after attention and after the FFN; Pfeiffer
    et al. 2020 (AdapterFusion, section 3): one per layer after the FFN (the `adapters` library's
    DoubleSeqBnConfig / SeqBnConfig, whose default width is hidden / reduction_factor 16; here `adapter_size`).
    Houlsby also trains the layer norms; the `adapters` library and this count do not.
    """
    h = model.hidden_size
    return model.num_hidden_layers * per_layer * (h * size + size + size * h + h)


def ln_tuning_params(model: ModelSpec) -> int:
    """LN tuning (Zhao et al. 2023; peft tuners/ln_tuning): peft deep-copies each targeted norm module
    (layer.py `update_layer`) and trains the copy, so the count is that of the targeted norms' tensors and the
    originals stay frozen. Targets: peft's defaults per model type (`ModelSpec.peft_defaults.ln_tuning_targets`); peft has none for the
    other model types (it asks for target_modules), for which every Group.NORM tensor is counted (the
    method's intent: all norms; q/k norms belong to attention and are left out)."""
    tensors = [t for block in model.layers for t in block.tensors] + [*model.embedding, *model.final]
    defaults = model.peft_defaults.ln_tuning_targets
    if defaults is None:
        return sum(t.numel for t in tensors if t.group is Group.NORM)
    return sum(t.numel for t in tensors if any(_matches(t.name.rsplit(".", 1)[0], m) for m in defaults))


def freeze_trainable(model: ModelSpec, freeze_layers: int) -> int:
    """Method.FREEZE, llmplan's convention: decoder layers freeze_layers.. plus the final norm(s), the final
    linears (OPT's project_out) and an untied head are trained; the embeddings, learned positions and a tied
    head (which is the embedding) stay frozen. Freezing the lower layers follows Howard & Ruder 2018 / Lee et
    al. 2019 ("What would Elsa do? Freezing layers during transformer fine-tuning")."""
    if freeze_layers > model.num_hidden_layers:
        raise SpecError(
            "freeze_layers",
            f"{freeze_layers} exceeds the {model.num_hidden_layers} layers of {model.name} "
            f"(allowed: 0..{model.num_hidden_layers})",
        )
    return (
        sum(block.numel for block in model.layers[freeze_layers:])
        + sum(t.numel for t in model.final)
        + sum(lin.numel for lin in model.final_linears)
        + model.lm_head_numel
    )


def trainable_params(model: ModelSpec, job: TrainingJob) -> TrainableParams:
    """Split `model`'s parameters for `job.method` into trainable base, added adapter and frozen base.

    QLoRA counts like LoRA (peft reports 4-bit weights at their unpacked count). The base count is
    `count_params(model).total`, so frozen + base_trainable always equals it.
    """
    base = count_params(model)
    peft = job.peft
    method = job.method
    if method is Method.FULL:
        return TrainableParams(base_trainable=base.total, adapter=0, frozen=0)
    if method is Method.BITFIT:
        if base.biases == 0:
            raise SpecError(
                "method", f"bitfit trains biases and {model.name} has none (allowed: another method)"
            )
        return TrainableParams(base_trainable=base.biases, adapter=0, frozen=base.total - base.biases)
    if method is Method.FREEZE:
        trained = freeze_trainable(model, peft.freeze_layers)
        return TrainableParams(base_trainable=trained, adapter=0, frozen=base.total - trained)
    return TrainableParams(base_trainable=0, adapter=_adapter_params(model, method, peft), frozen=base.total)


def _adapter_params(model: ModelSpec, method: Method, peft: PeftSpec) -> int:
    if method in LORA_FAMILY:
        linears = lora_target_linears(model, peft.lora_targets, convert_moe=method is not Method.ADALORA)
        if method is Method.DORA:
            return dora_params(linears, peft.lora_rank)
        if method is Method.ADALORA:
            return adalora_params(linears, peft.lora_rank)
        return lora_params(linears, peft.lora_rank, model)
    if method is Method.IA3:
        return ia3_params(model)
    if method in (Method.PREFIX, Method.PTUNING_V2):
        return prefix_params(model, peft, projection=method is Method.PREFIX and peft.prefix_projection)
    if method is Method.PROMPT:
        return prompt_params(model, peft)
    if method is Method.PTUNING:
        return ptuning_params(model, peft)
    if method is Method.ADAPTER_HOULSBY:
        return bottleneck_params(model, peft.adapter_size, per_layer=2)
    if method is Method.ADAPTER_PFEIFFER:
        return bottleneck_params(model, peft.adapter_size, per_layer=1)
    if method is Method.LAYERNORM:
        return ln_tuning_params(model)
    raise SpecError(
        "method", f"{method.value!r} is not a PEFT method (allowed: {', '.join(m.value for m in Method)})"
    )
