"""The trace engine on tiny models: composition is exact, categories are right, phases are where expected."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from llmplan.adapters import parse_config  # noqa: E402
from llmplan.specs.training import (  # noqa: E402
    AttentionImpl,
    Method,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
)
from llmplan.trace import inference_run, trace_inference, trace_training  # noqa: E402
from llmplan.trace.tracker import rounded  # noqa: E402

pytestmark = pytest.mark.trace

TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 6,
    "vocab_size": 512,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}


@pytest.fixture(scope="module")
def tiny():
    return parse_config(dict(TINY), "tiny-llama")


COMPOSE_JOBS = {
    "full bf16-mixed foreach": TrainingJob(seq_len=32),
    "lora fp32 adapters": TrainingJob(seq_len=32, method=Method.LORA, precision=Precision.BF16),
    "full recompute fused": TrainingJob(
        seq_len=32, precision=Precision.BF16, recompute=Recompute.FULL, optimizer_impl=OptimizerImpl.FUSED
    ),
    "eager attention selective": TrainingJob(
        seq_len=32, precision=Precision.FP32, attention=AttentionImpl.EAGER, recompute=Recompute.SELECTIVE
    ),
}


@pytest.mark.parametrize("name", sorted(COMPOSE_JOBS))
def test_composition_equals_full_trace(tiny, name):
    job = COMPOSE_JOBS[name]
    full = trace_training(tiny, job, compose=False)
    composed = trace_training(tiny, job)
    assert composed.composed and not full.composed
    assert composed.peak == full.peak
    assert (composed.peak_phase, composed.peak_step) == (full.peak_phase, full.peak_step)
    assert composed.timeline == full.timeline
    assert (composed.total_params, composed.trainable_params) == (full.total_params, full.trainable_params)


def test_composition_equals_full_trace_inference(tiny):
    run = inference_run(batch_size=2, prompt_len=32, decode_steps=2, dtype="bfloat16")
    full = trace_inference(tiny, run, compose=False)
    composed = trace_inference(tiny, run)
    assert composed.composed
    assert composed.peak == full.peak and composed.timeline == full.timeline


def test_kv_cache_bytes_exact(tiny):
    """2 · layers · kv_heads · head_dim · tokens · bytes, each layer's K and V one 512-rounded storage."""
    batch, prompt, steps = 2, 64, 3
    run = inference_run(batch_size=batch, prompt_len=prompt, decode_steps=steps)
    result = trace_inference(tiny, run, compose=False)
    L, kv, hd = tiny.num_hidden_layers, tiny.num_key_value_heads, tiny.head_dim
    one_tensor = kv * hd * batch * (prompt + steps) * 2
    final = result.timeline[-1]
    assert final.phase == "decode"
    assert final.end_bytes - result.timeline[0].end_bytes == 2 * L * rounded(one_tensor) + rounded(batch * 8)
    prefill_kv = 2 * L * kv * hd * batch * prompt * 2
    assert result.peak_phase == "prefill" and result.peak.value("kv_cache") == prefill_kv


def test_lora_trainable_and_frozen(tiny):
    job = TrainingJob(
        seq_len=32,
        method=Method.LORA,
        precision=Precision.BF16,
        optimizer_impl=OptimizerImpl.FUSED,
        peft=PeftSpec(lora_rank=4, lora_targets=("q_proj", "v_proj")),
    )
    result = trace_training(tiny, job, compose=False)
    L, h, kvd, r = tiny.num_hidden_layers, tiny.hidden_size, tiny.num_key_value_heads * tiny.head_dim, 4
    assert result.trainable_params == L * r * (h + h) + L * r * (h + kvd)
    # Adapters are fp32 (peft keeps them so); each A and B is its own storage.
    adapter_bytes = L * (rounded(4 * r * h) * 3 + rounded(4 * r * kvd))
    states = [p for p in result.timeline if p.phase == "optimizer" and p.step == 1][0]
    assert states.end_bytes - result.timeline[0].end_bytes == 2 * adapter_bytes + 2 * L * 2 * 512
    assert result.peak.value("master_weights") == 0


def test_fused_removes_foreach_temporary(tiny):
    foreach = trace_training(tiny, TrainingJob(seq_len=16, precision=Precision.BF16), compose=False)
    fused_job = TrainingJob(seq_len=16, precision=Precision.BF16, optimizer_impl=OptimizerImpl.FUSED)
    fused = trace_training(tiny, fused_job, compose=False)
    assert foreach.peak_phase == "optimizer"
    assert foreach.peak.value("temporaries") >= foreach.peak.value("gradients") * 0.9
    assert fused.total < foreach.total
    assert fused.peak.value("temporaries") < foreach.peak.value("temporaries") / 4


def test_peak_phase_moves_to_backward_with_long_eager_attention(tiny):
    job = TrainingJob(seq_len=128, precision=Precision.BF16, attention=AttentionImpl.EAGER)
    result = trace_training(tiny, job, compose=False)
    assert result.peak_phase in ("forward", "backward")
    assert result.peak.value("activations") > result.peak.value("weights")


def test_mixed_precision_has_master_weights(tiny):
    result = trace_training(tiny, TrainingJob(seq_len=16, precision=Precision.BF16_MIXED), compose=False)
    weights = result.peak.value("weights")
    assert result.peak.value("master_weights") == pytest.approx(2 * weights, rel=0.02)
    assert result.peak.value("optimizer_states") == pytest.approx(4 * weights, rel=0.02)


def test_cut_model_keeps_block_count(tiny):
    from llmplan.trace.compose import with_layers

    cut = with_layers(tiny, 2)
    assert cut.num_hidden_layers == 2 and len(cut.layers) == 2
    assert replace(tiny).num_hidden_layers == 6


GEMMA2_LIKE = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_hidden_layers": 12,
    "vocab_size": 512,
    "sliding_window": 8,
    "max_position_embeddings": 256,
}


def test_composition_of_alternating_layer_kinds():
    """Gemma 2 alternates sliding-window and full layers: composed by periods of two layers (the training
    step of this model composes exactly too; inference keeps the test fast)."""
    from llmplan.trace.compose import layer_pattern

    spec = parse_config(dict(GEMMA2_LIKE), "tiny-gemma2")
    pattern = layer_pattern(spec)
    assert (pattern.prefix, pattern.period, pattern.periods) == (0, 2, 6)
    run = inference_run(batch_size=1, prompt_len=16, decode_steps=1, attention="eager")
    composed = trace_inference(spec, run)
    assert composed.composed and composed.traced_layers == (8, 10)
    full = trace_inference(spec, run, compose=False)
    assert composed.peak == full.peak and composed.timeline == full.timeline


def test_dense_prefix_pattern():
    """DeepSeek's first dense layers are a prefix before the repeated MoE layer."""
    from llmplan.trace.compose import layer_pattern

    tiny = parse_config(dict(TINY), "tiny-llama")
    dense, moe = tiny.layers[0], replace(tiny.layers[0], moe=True)
    spec = replace(tiny, layers=(dense,) + (moe,) * 9, num_hidden_layers=10)
    pattern = layer_pattern(spec)
    assert (pattern.prefix, pattern.period, pattern.periods) == (1, 1, 9)
    assert layer_pattern(replace(tiny, layers=tiny.layers[:5], num_hidden_layers=5)) is None
