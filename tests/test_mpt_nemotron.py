"""MPT (llm-foundry) and Nemotron: exact counts of the benchmark configurations, what transformers can build, the
trace engine on both, and one clear error per bad config value."""

from __future__ import annotations

import pytest

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.errors import SpecError, UnsupportedModelError
from llmplan.formulas.params import count_params
from llmplan.specs.model import PositionKind, Role

# llm-foundry scripts/train/benchmarking/README.md @4952183 (n_params column): the benchmark's max_seq_len sets
# the learned position table, so the count changes with the row's sequence length.
README_N_PARAMS = [
    ("mpt-125m", 512, 124_131_840),
    ("mpt-125m", 65536, 174_070_272),
    ("mpt-350m", 8192, 362_276_864),
    ("mpt-760m", 32768, 807_656_448),
    ("mpt-1b", 16384, 1_345_310_720),
    ("mpt-3b", 4096, 2_657_080_320),
    ("mpt-7b", 65536, 6_918_905_856),
    ("mpt-13b", 32768, 13_011_240_960),
    ("mpt-30b", 8192, 30_019_254_272),
    ("mpt-70b", 2048, 64_862_437_376),
]


@pytest.mark.parametrize(("model_id", "seq", "n_params"), README_N_PARAMS)
def test_benchmark_mpt_counts_equal_the_readme(model_id, seq, n_params):
    entry = catalog.model_entry(model_id)
    spec = parse_config({**entry.config, "max_seq_len": seq}, model_id)
    assert count_params(spec).total == n_params
    assert spec.position is PositionKind.LEARNED and spec.tie_word_embeddings
    assert not spec.native_transformers  # biases and learned positions: not transformers' MptForCausalLM


def test_benchmark_mpt_is_refused_by_the_trace_not_traced_wrong():
    from llmplan.trace.build import check_native

    with pytest.raises(UnsupportedModelError, match="cannot be traced"):
        check_native(parse_config(catalog.model_entry("mpt-7b").config, "mpt-7b"))


def test_hub_mpt_is_alibi_without_biases():
    spec = parse_config(catalog.model_entry("mosaicml-mpt-7b").config, "mosaicml-mpt-7b")
    assert spec.native_transformers and spec.position is PositionKind.ALIBI
    assert not any(lin.bias for lin in spec.layers[0].linears)
    assert [lin.role for lin in spec.layers[0].linears] == [Role.QKV, Role.OUT, Role.UP, Role.DOWN]
    assert catalog.find_by_hub_id("mosaicml/mpt-7b").id == "mosaicml-mpt-7b"


MPT_SMALL = {
    "model_type": "mpt",
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "vocab_size": 100,
    "max_seq_len": 32,
}


def test_mpt_variants_by_hand():
    d, v, s, layers = 64, 100, 32, 2
    base = count_params(parse_config(MPT_SMALL, "x")).total
    assert base == layers * (12 * d * d + 13 * d) + v * d + s * d + 2 * d
    gqa = {**MPT_SMALL, "attn_config": {"attn_type": "grouped_query_attention", "kv_n_heads": 2}}
    kv = 2 * (d // 4)
    assert count_params(parse_config(gqa, "x")).total == base - layers * (2 * (d - kv) * (d + 1))
    rope_qk = {**MPT_SMALL, "no_bias": True, "attn_config": {"rope": True, "qk_ln": True}}
    spec = parse_config(rope_qk, "x")
    assert spec.position is PositionKind.ROPE and not spec.native_transformers
    assert count_params(spec).total == layers * (12 * d * d + 2 * d + 2 * d) + v * d + d
    ratio = {**MPT_SMALL, "ffn_config": {"expansion_ratio": 2}}
    assert parse_config(ratio, "x").intermediate_size == 2 * d


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attn_config": {"attn_type": "sliding"}}, "attn_config.attn_type"),
        ({"ffn_config": {"ffn_type": "mb_moe"}}, "ffn_config.ffn_type"),
        ({"expansion_ratio": 0}, "expansion_ratio"),
        ({"attn_config": {"attn_type": "grouped_query_attention", "kv_n_heads": 3}}, "n_heads"),
        ({"attn_config": "alibi"}, "attn_config"),
        ({"n_heads": 5}, "d_model"),
        ({"d_model": -1}, "d_model"),
    ],
)
def test_bad_mpt_values_name_the_field(change, field):
    with pytest.raises(SpecError) as exc:
        parse_config({**MPT_SMALL, **change}, "bad")
    assert exc.value.field == field


NEM_SMALL = {
    "model_type": "nemotron",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 100,
    "head_dim": 32,
}


def test_nemotron_is_squared_relu_layernorm1p_partial_rope():
    spec = parse_config(NEM_SMALL, "x")
    assert (
        spec.hidden_act == "relu2" and spec.mlp_kind.value == "plain" and spec.norm_kind.value == "layernorm"
    )
    assert spec.head_dim == 32 and spec.num_key_value_heads == 2 and not spec.tie_word_embeddings
    h, i, layers = 64, 128, 2
    attn = h * 4 * 32 + 2 * h * 2 * 32 + 4 * 32 * h
    assert count_params(spec).total == layers * (attn + 2 * h * i + 4 * h) + 2 * 100 * h + 2 * h
    with pytest.raises(SpecError) as exc:
        parse_config({**NEM_SMALL, "num_key_value_heads": 3}, "bad")
    assert exc.value.field == "num_attention_heads"


def test_published_nemotron_sizes():
    """Nemotron-4 15B: 3.2B embedding + 12.5B non-embedding (arXiv:2402.16819); 340B: 9.4B + 331.6B
    (arXiv:2406.11704); Minitron 4B / 8B (arXiv:2407.14679)."""
    for model_id, embedding, rest in [
        ("nemotron-4-15b", 3.15e9, 12.5e9),
        ("nemotron-4-340b", 9.4e9, 331.6e9),
    ]:
        counts = count_params(parse_config(catalog.model_entry(model_id).config, model_id))
        assert counts.embedding + counts.lm_head == pytest.approx(embedding, rel=0.02)
        assert counts.total - counts.embedding - counts.lm_head == pytest.approx(rest, rel=0.01)
    assert count_params(catalog_spec("minitron-4b")).total == pytest.approx(4.19e9, rel=0.01)
    assert count_params(catalog_spec("minitron-8b")).total == pytest.approx(8.27e9, rel=0.01)


def catalog_spec(model_id):
    return parse_config(catalog.model_entry(model_id).config, model_id)


# the trace engine builds both (transformers' native classes)

TINY_MPT = {**MPT_SMALL, "n_layers": 3, "no_bias": True, "attn_config": {"alibi": True}}


@pytest.mark.trace
@pytest.mark.parametrize(
    ("config", "attention"), [(TINY_MPT, "eager"), ({**NEM_SMALL, "num_hidden_layers": 3}, "sdpa")]
)
def test_trace_builds_and_composes(config, attention):
    pytest.importorskip("torch")
    from llmplan.specs.training import AttentionImpl, TrainingJob
    from llmplan.trace import trace_training

    spec = parse_config(config, "tiny")
    job = TrainingJob(seq_len=16, attention=AttentionImpl(attention))
    full = trace_training(spec, job, compose=False)
    composed = trace_training(spec, job)
    assert full.total_params == count_params(spec).total
    assert composed.peak == full.peak and composed.timeline == full.timeline


@pytest.mark.trace
@pytest.mark.parametrize("config", [TINY_MPT, {**NEM_SMALL, "hidden_size": 128}], ids=["mpt", "nemotron"])
def test_activation_formula_matches_saved_tensors_eager(config):
    """Saved-for-backward bytes of one forward (eager attention, bf16), formula vs the real model, within 3 %."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from torch._subclasses.fake_tensor import FakeTensorMode

    from llmplan.formulas.activations import training_activations
    from llmplan.specs.training import AttentionImpl, Layout, Precision, TrainingJob

    cfg = dict(config)
    hf = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = transformers.AutoModelForCausalLM.from_config(
            hf, attn_implementation="eager", dtype=torch.bfloat16
        )
        model.train()
        params = {p.untyped_storage()._cdata for p in model.parameters()}
        seen: dict[int, int] = {}
        keep = []

        def pack(t):
            storage = t.untyped_storage()
            if storage._cdata not in params and storage._cdata not in seen:
                seen[storage._cdata] = storage.nbytes()
                keep.append(t)
            return t

        ids = torch.randint(0, 100, (2, 32))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(input_ids=ids, labels=ids)
        logits = out.logits.untyped_storage()
        traced = sum(seen.values()) + (0 if logits._cdata in seen else logits.nbytes())
    spec = parse_config(config, "tiny")
    job = TrainingJob(seq_len=32, micro_batch_size=2, precision=Precision.BF16, attention=AttentionImpl.EAGER)
    assert training_activations(spec, job, Layout()).total == pytest.approx(traced, rel=0.03)
