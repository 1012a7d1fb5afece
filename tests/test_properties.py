"""Property tests (hypothesis): invariants of the memory model and of the input layer that must hold for every
valid input, not only for the reference cases."""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import replace
from functools import cache

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmplan import catalog, limits
from llmplan.adapters import parse_config
from llmplan.cli import main
from llmplan.errors import InvalidInputError, LlmplanError
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.training import estimate_training
from llmplan.estimate.validation import problems
from llmplan.formulas.formats import encode_all
from llmplan.formulas.params import count_params
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat
from llmplan.specs.training import (
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)

FAST = settings(max_examples=12, deadline=None)
MODELS = ("llama-2-7b", "llama-3-8b", "mistral-7b-v0.3", "qwen2.5-7b", "gpt2-large", "mixtral-8x7b-v0.1")
FULL_ATTENTION = ("llama-2-7b", "llama-3-8b", "qwen2.5-7b", "gpt2-large")

models = st.sampled_from([m for m in MODELS if catalog.is_model_id(m)] or ["llama-2-7b"])
full_models = st.sampled_from([m for m in FULL_ATTENTION if catalog.is_model_id(m)] or ["llama-2-7b"])
seqs = st.sampled_from([64, 128, 256, 512])
batches = st.integers(1, 8)


@cache
def model(name: str):
    return load_model(name)


def cluster(gpus: int = 1, gpu: str = "h100-sxm-80gb") -> Cluster:
    per_node = min(gpus, 8)
    return Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=per_node, nodes=gpus // per_node)


def train(name: str, job: TrainingJob, layout: Layout = Layout()):
    return estimate_training(model(name), job, layout, cluster(layout.num_gpus))


def states(est) -> int:
    """The persistent model states per GPU: weights, fp32 master weights, gradients, optimizer states."""
    m = est.model_states
    return m.weights_bytes + m.master_weights_bytes + m.gradients_bytes + m.optimizer_states_bytes


def saved(est) -> int:
    """Activations saved for backward (the breakdown at the peak may hold none: the peak can be the step)."""
    return est.activations.layers_bytes + est.activations.embedding_bytes


def serve(name: str, **kw):
    return estimate_inference(model(name), InferenceJob(**kw), cluster(kw.get("tp", 1)))


# --- training: sharding and parallel degrees -------------------------------------------------------------
@FAST
@given(models, st.sampled_from([2, 4, 8]))
def test_model_states_never_rise_with_the_zero_stage(name, dp):
    job = TrainingJob(seq_len=512)
    per_gpu = [states(train(name, job, Layout(dp=dp, zero=ZeroStage(z)))) for z in range(4)]
    assert per_gpu == sorted(per_gpu, reverse=True) and per_gpu[3] < per_gpu[0]


@FAST
@given(models)
def test_model_states_never_rise_when_gpus_rise_under_zero3(name):
    job = TrainingJob(seq_len=512)
    per_gpu = [states(train(name, job, Layout(dp=dp, zero=ZeroStage.PARAMETERS))) for dp in (1, 2, 4, 8)]
    assert per_gpu == sorted(per_gpu, reverse=True)


@FAST
@given(st.sampled_from(["llama-2-7b", "llama-3-8b"]), st.sampled_from([1, 2, 4, 8]))
def test_weights_per_gpu_never_rise_with_tp(name, tp):
    job = TrainingJob(seq_len=512)
    a = train(name, job, Layout(tp=tp)).memory.weights_bytes
    b = train(name, job, Layout(tp=2 * tp)).memory.weights_bytes if tp < 8 else 0
    assert b <= a


@FAST
@given(models, st.sampled_from([1, 2, 4]))
def test_model_states_per_gpu_never_rise_with_pp(name, pp):
    job = TrainingJob(seq_len=512)
    assert states(train(name, job, Layout(pp=2 * pp))) <= states(train(name, job, Layout(pp=pp)))


@FAST
@given(models, st.sampled_from([2, 4, 8]))
def test_model_states_times_gpus_cover_the_whole_model(name, dp):
    """ZeRO-3 shards, never loses: per-GPU states x GPUs >= the unsharded states of one GPU's share."""
    job = TrainingJob(seq_len=256)
    one = states(train(name, job, Layout()))
    sharded = states(train(name, job, Layout(dp=dp, zero=ZeroStage.PARAMETERS)))
    assert sharded * dp >= one


# --- training: activations ---------------------------------------------------------------------------------
@FAST
@given(models, seqs, batches)
def test_activations_grow_with_sequence(name, seq, mb):
    a = saved(train(name, TrainingJob(seq_len=seq, micro_batch_size=mb)))
    b = saved(train(name, TrainingJob(seq_len=2 * seq, micro_batch_size=mb)))
    assert b > a


@FAST
@given(models, seqs, batches)
def test_activations_grow_with_micro_batch(name, seq, mb):
    a = saved(train(name, TrainingJob(seq_len=seq, micro_batch_size=mb)))
    b = saved(train(name, TrainingJob(seq_len=seq, micro_batch_size=mb + 1)))
    assert b > a


@FAST
@given(models, seqs, batches)
def test_recompute_full_le_selective_le_none(name, seq, mb):
    acts = [
        saved(train(name, TrainingJob(seq_len=seq, micro_batch_size=mb, recompute=r)))
        for r in (Recompute.FULL, Recompute.SELECTIVE, Recompute.NONE)
    ]
    assert acts == sorted(acts)


@FAST
@given(models, seqs)
def test_gradient_accumulation_keeps_activations(name, seq):
    a = saved(train(name, TrainingJob(seq_len=seq, grad_accum_steps=1)))
    b = saved(train(name, TrainingJob(seq_len=seq, grad_accum_steps=8)))
    assert a == b


@FAST
@given(models, seqs, batches)
def test_chunked_cross_entropy_never_adds_logit_bytes(name, seq, mb):
    job = TrainingJob(seq_len=seq, micro_batch_size=mb)
    plain = train(name, job).activations.logits_loss_bytes
    chunked = train(name, replace(job, chunked_ce=True)).activations.logits_loss_bytes
    assert chunked <= plain


# --- training: methods, optimizers, precision -------------------------------------------------------------
@FAST
@given(models, st.sampled_from([4, 8, 16, 64]))
def test_lora_trains_fewer_parameters_and_needs_less_state(name, rank):
    full = train(name, TrainingJob(seq_len=256))
    lora = train(
        name,
        TrainingJob(
            seq_len=256, method=Method.LORA, peft=PeftSpec(lora_rank=rank, lora_targets=("all-linear",))
        ),
    )
    assert lora.trainable_params < full.trainable_params
    assert states(lora) < states(full)


@FAST
@given(models)
def test_optimizer_state_order(name):
    by = {
        o: train(name, TrainingJob(seq_len=256, optimizer=o)).memory.optimizer_states_bytes
        for o in (Optimizer.SGD, Optimizer.SGD_MOMENTUM, Optimizer.ADAM8BIT, Optimizer.ADAMW)
    }
    assert by[Optimizer.SGD] <= by[Optimizer.SGD_MOMENTUM] <= by[Optimizer.ADAMW]
    assert by[Optimizer.ADAM8BIT] < by[Optimizer.ADAMW]


@FAST
@given(models)
def test_pure_bf16_holds_less_state_than_mixed(name):
    pure = states(train(name, TrainingJob(seq_len=256, precision=Precision.BF16)))
    mixed = states(train(name, TrainingJob(seq_len=256, precision=Precision.BF16_MIXED)))
    assert pure < mixed


@FAST
@given(models, st.sampled_from([2, 4]))
def test_cpu_offload_moves_optimizer_states_to_the_host(name, dp):
    job = TrainingJob(seq_len=256)
    on = train(name, job, Layout(dp=dp, zero=ZeroStage.GRADIENTS))
    off = train(name, job, Layout(dp=dp, zero=ZeroStage.GRADIENTS, offload_optimizer=OffloadTarget.CPU))
    assert off.memory.optimizer_states_bytes < on.memory.optimizer_states_bytes and off.host_bytes > 0


@FAST
@given(models, seqs, batches, st.sampled_from(list(OptimizerImpl)[:3]))
def test_counters_are_ordered_and_the_verdict_matches_the_headroom(name, seq, mb, impl):
    est = train(name, TrainingJob(seq_len=seq, micro_batch_size=mb, optimizer_impl=impl))
    assert est.allocated_bytes <= est.reserved_bytes <= est.device_bytes
    assert est.allocated_bytes >= states(est)
    assert est.headroom_bytes == est.capacity_bytes - est.device_bytes
    assert est.fits == (est.headroom_bytes >= 0)


# --- inference ---------------------------------------------------------------------------------------------
@FAST
@given(models)
def test_weight_bytes_int4_lt_fp8_lt_bf16_lt_fp32(name):
    weights = {
        q: serve(name, quant=q, context_len=256).memory.weights
        for q in (QuantFormat.GPTQ_INT4, QuantFormat.FP8, QuantFormat.BF16, QuantFormat.FP32)
    }
    total = {q: w.quantized_bytes + w.scales_bytes + w.high_precision_bytes for q, w in weights.items()}
    order = [total[q] for q in (QuantFormat.GPTQ_INT4, QuantFormat.FP8, QuantFormat.BF16, QuantFormat.FP32)]
    assert order == sorted(order) and len(set(order)) == 4


@FAST
@given(models)
def test_weight_bytes_nf4_lt_int8_lt_fp16(name):
    def total(q):
        w = serve(name, quant=q, context_len=256).memory.weights
        return w.quantized_bytes + w.scales_bytes + w.high_precision_bytes

    assert total(QuantFormat.NF4) < total(QuantFormat.INT8) < total(QuantFormat.FP16)


@FAST
@given(full_models, st.sampled_from([128, 256, 500]), batches)
def test_kv_cache_is_linear_in_context(name, context, batch):
    one = serve(name, context_len=context, batch=batch).memory.kv_cache_bytes
    two = serve(name, context_len=2 * context, batch=batch).memory.kv_cache_bytes
    assert two == 2 * one


@FAST
@given(full_models, st.sampled_from([128, 256, 1000]), batches)
def test_kv_cache_is_linear_in_batch(name, context, batch):
    one = serve(name, context_len=context, batch=batch).memory.kv_cache_bytes
    three = serve(name, context_len=context, batch=3 * batch).memory.kv_cache_bytes
    assert three == 3 * one


@FAST
@given(full_models, st.sampled_from([256, 1000]))
def test_fp8_kv_cache_is_half_of_bf16(name, context):
    bf16 = serve(name, context_len=context, kv_dtype=KvDtype.BF16).memory.kv_cache_bytes
    fp8 = serve(name, context_len=context, kv_dtype=KvDtype.FP8).memory.kv_cache_bytes
    assert 2 * fp8 == bf16


@FAST
@given(st.sampled_from(["llama-2-7b", "llama-3-8b"]), st.sampled_from([1, 2, 4]))
def test_kv_cache_per_gpu_never_rises_with_tp(name, tp):
    a = serve(name, context_len=1024, tp=tp).memory.kv_cache_bytes
    b = serve(name, context_len=1024, tp=2 * tp).memory.kv_cache_bytes
    assert b <= a


@FAST
@given(models, st.sampled_from([128, 256, 512]))
def test_largest_batch_never_rises_with_context(name, context):
    a = serve(name, context_len=context).max_batch_at_context
    b = serve(name, context_len=2 * context).max_batch_at_context
    assert b <= a


@FAST
@given(models, st.sampled_from([Engine.HF, Engine.VLLM]))
def test_inference_verdict_matches_the_headroom(name, engine):
    est = serve(name, context_len=512, engine=engine)
    assert est.fits == (est.headroom_bytes >= 0)


# --- parameters --------------------------------------------------------------------------------------------
@FAST
@given(models)
def test_parameter_total_is_the_sum_of_its_components(name):
    counts = count_params(model(name))
    assert counts.total == sum(counts.components().values())
    assert 0 < counts.active_per_token <= counts.total


LLAMA = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_attention_heads": 8,
    "num_hidden_layers": 4,
    "num_key_value_heads": 8,
    "vocab_size": 1000,
    "max_position_embeddings": 2048,
}


@FAST
@given(st.integers(1, 64), st.sampled_from([64, 128, 256, 512]))
def test_parameters_grow_with_layers_and_width(layers, hidden):
    base = {**LLAMA, "num_hidden_layers": layers, "hidden_size": hidden}
    n = count_params(parse_config(base, "x")).total
    assert count_params(parse_config({**base, "num_hidden_layers": layers + 1}, "x")).total > n
    assert count_params(parse_config({**base, "hidden_size": hidden + 64}, "x")).total > n


@FAST
@given(st.integers(1, 16), st.integers(1, 20))
def test_experts_per_token_never_exceed_experts(experts, top_k):
    config = {**LLAMA, "model_type": "mixtral", "num_local_experts": experts, "num_experts_per_tok": top_k}
    try:
        counts = count_params(parse_config(config, "x"))
    except LlmplanError:
        assert top_k > experts
        return
    assert top_k <= experts and counts.active_per_token <= counts.total


# --- the input layer ---------------------------------------------------------------------------------------
degrees = st.sampled_from([1, 2, 3, 4, 8])


@settings(max_examples=40, deadline=None)
@given(degrees, degrees, degrees, st.sampled_from(list(ZeroStage)), st.sampled_from([512, 4096, 5000]))
def test_problems_are_empty_exactly_when_the_estimate_runs(dp, tp, pp, zero, seq):
    spec, job = model("llama-2-7b"), TrainingJob(seq_len=seq)
    layout = Layout(dp=dp, tp=tp, pp=pp, zero=zero)
    found = problems(spec, job, layout, cluster(layout.num_gpus) if layout.num_gpus <= 8 else cluster(8))
    try:
        estimate_training(spec, job, layout, cluster(layout.num_gpus) if layout.num_gpus <= 8 else cluster(8))
    except InvalidInputError as exc:
        assert exc.problems == found and found
        assert all(p.value in p.message and p.allowed in p.message for p in found)
        return
    assert found == ()


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True)))
def test_a_bound_accepts_exactly_its_range(value):
    bound = limits.DEGREE
    inside = isinstance(value, int) and bound.low <= value <= bound.high
    assert (bound.problem("x", value) is None) == inside


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False))
def test_fp32_stores_any_moderate_number_within_half_an_ulp(value):
    assume(value == 0 or abs(value) > 1e-30)
    fp32 = next(e for e in encode_all(value) if e.format == "fp32")
    assert fp32.stored == value or abs(fp32.stored - value) <= abs(value) * 2**-24 * (1 + 1e-9)


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(["train", "serve", "params"]),
    models,
    st.sampled_from([256, 512, 1024]),
    st.sampled_from(["--json"]),
)
def test_json_output_is_strict_json(command, name, seq, flag):
    extra = {"train": ["--seq", str(seq)], "serve": ["--context", str(seq)], "params": []}[command]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([command, name, *extra, flag]) == 0
    text = buffer.getvalue()

    def refuse(constant: str) -> float:
        raise AssertionError(f"{constant} in --json output")

    data = json.loads(text, parse_constant=refuse)
    assert isinstance(data, (dict, list))
    assert all(math.isfinite(v) for v in _numbers(data))


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, float):
        yield value
