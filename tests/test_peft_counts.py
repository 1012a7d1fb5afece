"""Trainable-parameter counts of every PEFT method against peft itself.

Reference: peft 0.21 applied to the transformers v5 model built from the same small config on the CPU;
`PeftModel.get_nb_trainable_parameters()` (the sum of numel over parameters with requires_grad). Tolerance:
zero. Methods peft lacks (bottleneck adapters, BitFit, freeze) are checked against hand counts from their papers.
"""

from __future__ import annotations

import pytest

from llmplan.adapters import parse_config
from llmplan.errors import SpecError
from llmplan.formulas.params import count_params
from llmplan.formulas.peft import (
    TrainableParams,
    lora_params,
    lora_target_linears,
    trainable_params,
)
from llmplan.specs.model import Group, Linear, ModelSpec, Role, TpSplit
from llmplan.specs.peft_defaults import KV_HEAD_CONFIGS
from llmplan.specs.training import Method, PeftSpec, TrainingJob

TOKENS = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
SMALL = {**TOKENS, "vocab_size": 96, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
LLAMA = {**SMALL, "intermediate_size": 48, "num_key_value_heads": 2}
MOE = {"moe_intermediate_size": 16, "num_experts_per_tok": 2}
MLA = {"kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8}

# (case id, model_type, config): two layers, small widths; GQA everywhere the family has it so that prefix
# tuning's KV-head sizing is exercised.
ARCHS: dict[str, tuple[str, dict]] = {
    "llama-gqa": ("llama", LLAMA),
    "qwen2-bias": ("qwen2", {**LLAMA, "tie_word_embeddings": True}),
    "mistral": ("mistral", {**LLAMA, "num_key_value_heads": 1, "sliding_window": 16}),
    "gemma2": ("gemma2", {**LLAMA, "num_key_value_heads": 1, "head_dim": 16, "sliding_window": 16}),
    "phi3-fused": ("phi3", LLAMA),
    "mixtral": ("mixtral", {**LLAMA, "num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2-moe": (
        "qwen2_moe",
        {**LLAMA, **MOE, "num_experts": 4, "shared_expert_intermediate_size": 24, "mlp_only_layers": [0]},
    ),
    "qwen3-moe": ("qwen3_moe", {**LLAMA, **MOE, "num_experts": 4, "head_dim": 16, "mlp_only_layers": [0]}),
    "deepseek-v3": (
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
    "gpt2": (
        "gpt2",
        {**TOKENS, "vocab_size": 96, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64},
    ),
    "opt": ("opt", {**SMALL, "ffn_dim": 64, "max_position_embeddings": 64}),
    "falcon": ("falcon", {**SMALL, "new_decoder_architecture": True, "num_kv_heads": 2, "bias": True}),
}

# (case id, arch, lora targets) for LoRA, DoRA and AdaLoRA.
LORA_CASES = [
    ("llama-qv", "llama-gqa", ("q_proj", "v_proj")),
    ("llama-all-linear", "llama-gqa", ("all-linear",)),
    ("qwen2-qkvo", "qwen2-bias", ("q_proj", "k_proj", "v_proj", "o_proj")),
    ("mistral-all-linear", "mistral", ("all-linear",)),
    ("gemma2-mlp", "gemma2", ("gate_proj", "up_proj", "down_proj")),
    ("phi3-fused-qkv", "phi3-fused", ("qkv_proj", "gate_up_proj")),
    ("mixtral-qv", "mixtral", ("q_proj", "v_proj")),
    ("mixtral-all-linear", "mixtral", ("all-linear",)),
    ("mixtral-v4-names", "mixtral", ("w1", "w3", "w2", "gate")),
    ("mixtral-v4-w1-alone", "mixtral", ("w1", "q_proj")),
    ("qwen2-moe-all-linear", "qwen2-moe", ("all-linear",)),
    ("qwen3-moe-all-linear", "qwen3-moe", ("all-linear",)),
    ("qwen3-moe-experts", "qwen3-moe", ("gate_proj", "up_proj", "down_proj")),
    ("deepseek-v3-all-linear", "deepseek-v3", ("all-linear",)),
    ("deepseek-v3-attention", "deepseek-v3", ("q_a_proj", "kv_b_proj")),
    ("gpt2-c-attn", "gpt2", ("c_attn",)),
    ("gpt2-all-linear", "gpt2", ("all-linear",)),
    ("opt-all-linear", "opt", ("all-linear",)),
    ("opt-path", "opt", ("self_attn.q_proj", "fc2")),
]

IA3_ARCHS = ["llama-gqa", "qwen2-bias", "mistral", "gemma2", "mixtral", "gpt2", "opt", "falcon"]
LN_ARCHS = ["llama-gqa", "qwen2-bias", "mistral", "gemma2", "gpt2", "falcon"]
PROMPT_ARCHS = [
    "llama-gqa",
    "qwen2-bias",
    "mistral",
    "gemma2",
    "phi3-fused",
    "mixtral",
    "gpt2",
    "opt",
    "falcon",
]


def _spec(arch: str) -> ModelSpec:
    model_type, config = ARCHS[arch]
    return parse_config({"model_type": model_type, **config}, arch)


def _hf_model(arch: str):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model_type, config = ARCHS[arch]
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(transformers.CONFIG_MAPPING[model_type](**config))


def _peft_counts(arch: str, peft_config) -> tuple[int, int, int]:
    """(peft's trainable count, peft's all-parameter count, the base model's count)."""
    peft = pytest.importorskip("peft")
    model = _hf_model(arch)
    base = sum(p.numel() for p in model.parameters())
    trainable, everything = peft.get_peft_model(model, peft_config).get_nb_trainable_parameters()
    return trainable, everything, base


def _ours(arch: str, method: Method, **peft: object) -> TrainableParams:
    return trainable_params(_spec(arch), TrainingJob(method=method, peft=PeftSpec(**peft)))  # type: ignore[arg-type]


def _check(ours: TrainableParams, counts: tuple[int, int, int], *, extra_frozen: int = 0) -> None:
    trainable, everything, base = counts
    assert ours.total == trainable
    assert ours.frozen + ours.base_trainable == base
    assert base + ours.adapter + extra_frozen == everything


def _targets(targets: tuple[str, ...]) -> str | list[str]:
    return "all-linear" if targets == ("all-linear",) else list(targets)


@pytest.mark.trace
@pytest.mark.parametrize(("arch", "targets"), [pytest.param(a, t, id=i) for i, a, t in LORA_CASES])
@pytest.mark.parametrize("method", [Method.LORA, Method.DORA])
def test_lora_and_dora_match_peft(arch: str, targets: tuple[str, ...], method: Method):
    """Equal counts, or both refuse (DoRA on fused MoE parameters, half of a fused pair, v4 names)."""
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(
        r=4, target_modules=_targets(targets), use_dora=method is Method.DORA, task_type="CAUSAL_LM"
    )
    try:
        ours = _ours(arch, method, lora_rank=4, lora_targets=targets)
    except SpecError:
        with pytest.raises(ValueError, match="fused|does not work with use_dora|not found"):
            _peft_counts(arch, config)
        return
    _check(ours, _peft_counts(arch, config))


@pytest.mark.trace
@pytest.mark.parametrize(
    ("arch", "targets"), [pytest.param(a, t, id=i) for i, a, t in LORA_CASES if i != "mixtral-v4-w1-alone"]
)
def test_adalora_matches_peft_and_ranknum_is_frozen(arch: str, targets: tuple[str, ...]):
    peft = pytest.importorskip("peft")
    config = peft.AdaLoraConfig(init_r=6, target_r=2, total_step=100, target_modules=_targets(targets))
    try:
        ours = _ours(arch, Method.ADALORA, lora_rank=6, lora_targets=targets)
    except SpecError:
        with pytest.raises(ValueError, match="not found|not supported"):
            _peft_counts(arch, config)
        return
    adapted = len(lora_target_linears(_spec(arch), targets, convert_moe=False))
    _check(ours, _peft_counts(arch, config), extra_frozen=adapted)  # one frozen `ranknum` per adapted layer


@pytest.mark.trace
@pytest.mark.parametrize("arch", IA3_ARCHS)
def test_ia3_defaults_match_peft(arch: str):
    peft = pytest.importorskip("peft")
    _check(_ours(arch, Method.IA3), _peft_counts(arch, peft.IA3Config(task_type="CAUSAL_LM")))


@pytest.mark.trace
@pytest.mark.parametrize("arch", LN_ARCHS)
def test_ln_tuning_defaults_match_peft(arch: str):
    peft = pytest.importorskip("peft")
    _check(_ours(arch, Method.LAYERNORM), _peft_counts(arch, peft.LNTuningConfig(task_type="CAUSAL_LM")))


@pytest.mark.trace
@pytest.mark.parametrize("arch", PROMPT_ARCHS)
def test_prompt_tuning_matches_peft(arch: str):
    peft = pytest.importorskip("peft")
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=7)
    _check(_ours(arch, Method.PROMPT, num_virtual_tokens=7), _peft_counts(arch, config))


@pytest.mark.trace
@pytest.mark.parametrize("arch", PROMPT_ARCHS)
@pytest.mark.parametrize(
    ("method", "projection", "encoder"),
    [
        (Method.PTUNING_V2, False, None),
        (Method.PREFIX, False, None),
        (Method.PREFIX, True, None),
        (Method.PREFIX, True, 24),
    ],
)
def test_prefix_tuning_matches_peft(arch: str, method: Method, projection: bool, encoder: int | None):
    peft = pytest.importorskip("peft")
    extra = {} if encoder is None else {"encoder_hidden_size": encoder}
    config = peft.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=5, prefix_projection=projection, **extra
    )
    ours = _ours(
        arch, method, num_virtual_tokens=5, prefix_projection=projection, encoder_hidden_size=encoder
    )
    _check(ours, _peft_counts(arch, config))


@pytest.mark.trace
@pytest.mark.parametrize("arch", PROMPT_ARCHS)
@pytest.mark.parametrize("encoder", [None, 24])
def test_ptuning_matches_peft(arch: str, encoder: int | None):
    peft = pytest.importorskip("peft")
    extra = {} if encoder is None else {"encoder_hidden_size": encoder}
    config = peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=5, **extra)
    _check(
        _ours(arch, Method.PTUNING, num_virtual_tokens=5, encoder_hidden_size=encoder),
        _peft_counts(arch, config),
    )


@pytest.mark.trace
def test_kv_head_config_set_matches_transformers():
    """Prefix tuning sizes prefixes by KV heads exactly when the transformers config has num_key_value_heads."""
    transformers = pytest.importorskip("transformers")
    from llmplan.adapters import ADAPTERS

    native = [t for t in ADAPTERS if t in transformers.CONFIG_MAPPING]
    has_kv = {t for t in native if "num_key_value_heads" in transformers.CONFIG_MAPPING[t]().to_dict()}
    assert has_kv == KV_HEAD_CONFIGS & set(native)


@pytest.mark.trace
@pytest.mark.parametrize(
    ("arch", "targets"), [("phi3-fused", ("q_proj", "v_proj")), ("mixtral", ("gate_up_proj",))]
)
def test_targets_peft_cannot_reach_raise_like_peft(arch: str, targets: tuple[str, ...]):
    """Phi-3 fuses q/k/v into qkv_proj; Mixtral's experts are fused 3-D parameters, not nn.Linear modules."""
    peft = pytest.importorskip("peft")
    with pytest.raises(ValueError, match="not found"):
        peft.get_peft_model(_hf_model(arch), peft.LoraConfig(r=4, target_modules=list(targets)))
    with pytest.raises(SpecError, match="lora_targets") as err:
        _ours(arch, Method.LORA, lora_targets=targets)
    assert (
        "qkv_proj" in str(err.value) if arch == "phi3-fused" else "mlp.experts.gate_up_proj" in str(err.value)
    )


def test_one_unmatched_target_raises_and_lists_names():
    with pytest.raises(SpecError, match="q_prj matches no linear layer.*allowed: .*q_proj"):
        _ours("llama-gqa", Method.LORA, lora_targets=("q_prj", "v_proj"))


def test_mixtral_all_linear_reaches_experts_only_through_peft_lora_conversion():
    attention = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}
    spec = _spec("mixtral")
    adalora = {lin.name for _, lin in lora_target_linears(spec, ("all-linear",), convert_moe=False)}
    assert adalora == attention
    lora = {lin.name for _, lin in lora_target_linears(spec, ("all-linear",))}
    assert lora == attention | {"mlp.gate", "mlp.experts.gate_up_proj", "mlp.experts.down_proj"}


def test_deepseek_all_linear_drops_dense_mlp_and_shared_experts_like_peft():
    """peft maps gate_proj/up_proj/down_proj to the fused experts' parameters, so the dense layer-0 MLP and the
    shared experts (nn.Linear modules with those leaf names) are not adapted under all-linear."""
    names = {(i, lin.name) for i, lin in lora_target_linears(_spec("deepseek-v3"), ("all-linear",))}
    assert not any("shared_experts" in n or n.startswith("mlp.gate_proj") for _, n in names)
    assert (1, "mlp.experts.gate_up_proj") in names


def test_seed_003_lora_rank_4_on_512_by_64():
    """Seed 003: LoRA rank 4 on a 512×64 weight trains 4·(512 + 64) = 2304 parameters instead of 32768."""
    linear = Linear("proj", 512, 64, False, Group.MLP, TpSplit.COLUMN, Role.UP)
    assert lora_params([(0, linear)], 4) == 2304
    assert linear.weight_numel == 32768


@pytest.mark.trace
def test_seed_003_matches_peft_on_a_linear():
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    model = torch.nn.Sequential(torch.nn.Linear(512, 64, bias=False))
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["0"]))
    assert peft_model.get_nb_trainable_parameters() == (2304, 2304 + 32768)


def test_full_bitfit_freeze_split_the_base():
    spec = _spec("opt")
    base = count_params(spec)
    full = _ours("opt", Method.FULL)
    assert (full.base_trainable, full.adapter, full.frozen) == (base.total, 0, 0)
    bitfit = _ours("opt", Method.BITFIT)
    assert bitfit.base_trainable == base.biases > 0
    assert bitfit.frozen + bitfit.base_trainable == base.total
    freeze = _ours("opt", Method.FREEZE, freeze_layers=1)
    trained = spec.layers[1].numel + sum(t.numel for t in spec.final) + spec.lm_head_numel
    assert freeze.base_trainable == trained
    assert _ours("opt", Method.FREEZE, freeze_layers=2).base_trainable == trained - spec.layers[1].numel
    with pytest.raises(SpecError, match="freeze_layers"):
        _ours("opt", Method.FREEZE, freeze_layers=3)
    with pytest.raises(SpecError, match="bitfit"):
        _ours("llama-gqa", Method.BITFIT)


def test_bottleneck_adapters_houlsby_twice_pfeiffer():
    """Houlsby et al. 2019: two adapters per layer; Pfeiffer et al. 2020: one. h=32, a=8, 2 layers."""
    one = 32 * 8 + 8 + 8 * 32 + 32
    assert _ours("llama-gqa", Method.ADAPTER_PFEIFFER, adapter_size=8).total == 2 * one
    assert _ours("llama-gqa", Method.ADAPTER_HOULSBY, adapter_size=8).total == 2 * 2 * one


@pytest.mark.trace
@pytest.mark.parametrize("arch", ["phi3-fused", "qwen3-moe", "deepseek-v3"])
def test_ia3_without_peft_defaults_raises_like_peft(arch: str):
    peft = pytest.importorskip("peft")
    with pytest.raises(ValueError, match="target_modules"):
        peft.get_peft_model(_hf_model(arch), peft.IA3Config(task_type="CAUSAL_LM"))
    with pytest.raises(SpecError, match="ia3 has no default target modules for model_type"):
        _ours(arch, Method.IA3)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("method", [m for m in Method if m not in (Method.IA3, Method.BITFIT)])
def test_peft_never_exceeds_full_and_base_adds_up(arch: str, method: Method):
    spec = _spec(arch)
    targets = ("o_proj",) if method is Method.DORA and spec.is_moe else ("all-linear",)
    ours = trainable_params(
        spec, TrainingJob(method=method, peft=PeftSpec(lora_targets=targets, adapter_size=4))
    )
    assert ours.frozen + ours.base_trainable == count_params(spec).total
    if method not in (Method.FULL, Method.PREFIX, Method.PTUNING_V2):
        assert ours.total < count_params(spec).total


# Llama-2-7B at full size. Reference: peft 0.21 on the meta-device model (checked by the trace test below; for
# LoRA r=8 on q_proj,v_proj peft prints "trainable params: 4,194,304 || all params: 6,742,609,920", the figure
# public Llama-2-7B fine-tuning notebooks show). Tolerance: zero.
LLAMA_2_7B_EXPECTED = [
    ("lora-r8-qv", Method.LORA, {}, 4_194_304),
    ("lora-r16-all-linear", Method.LORA, {"lora_rank": 16, "lora_targets": ("all-linear",)}, 39_976_960),
    ("ia3", Method.IA3, {}, 614_400),
    ("prefix", Method.PREFIX, {}, 5_242_880),
]


@pytest.mark.parametrize(
    ("method", "peft_kw", "expected"), [pytest.param(*c[1:], id=c[0]) for c in LLAMA_2_7B_EXPECTED]
)
def test_llama_2_7b_reference_counts(llama7b_config: dict, method: Method, peft_kw: dict, expected: int):
    spec = parse_config(llama7b_config, "llama-2-7b")
    ours = trainable_params(spec, TrainingJob(method=method, peft=PeftSpec(**peft_kw)))
    assert ours.total == expected
    assert ours.frozen == count_params(spec).total == 6_738_415_616


@pytest.mark.trace
def test_llama_2_7b_reference_counts_are_peft_counts(llama7b_config: dict):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config = transformers.LlamaConfig(**{k: v for k, v in llama7b_config.items() if k != "model_type"})
    configs = {
        "lora-r8-qv": peft.LoraConfig(r=8, target_modules=["q_proj", "v_proj"]),
        "lora-r16-all-linear": peft.LoraConfig(r=16, target_modules="all-linear"),
        "ia3": peft.IA3Config(task_type="CAUSAL_LM"),
        "prefix": peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20),
    }
    for case, _, _, expected in LLAMA_2_7B_EXPECTED:
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
            counts = peft.get_peft_model(model, configs[case]).get_nb_trainable_parameters()
        assert counts == (expected, 6_738_415_616 + expected)
