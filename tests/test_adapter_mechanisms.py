"""Adapters as stacks hold them (issue 15 item 2): adapter dtype and LoRA dropout, analytic against the trace
engine (the real peft model on fake tensors), and the stack defaults that pick the dtype."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.estimate.training import estimate_training
from llmplan.formulas.activations import training_activations
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import (
    AdapterDtype,
    Layout,
    Method,
    PeftSpec,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
)
from llmplan.stacks import DEFAULTS
from llmplan.validate.trace_matrix import CASES

TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 512,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}
ALL = PeftSpec(lora_rank=8, lora_targets=("all-linear",))


@pytest.fixture(scope="module")
def tiny():
    return parse_config(dict(TINY), "tiny-llama")


def _estimate(model, job: TrainingJob, stack: Stack = Stack.HF_TRAINER):
    cluster = Cluster(accelerator=catalog.accelerator("h100-sxm-80gb"), gpus_per_node=1, nodes=1)
    return estimate_training(model, job, Layout(stack=stack), cluster)


def test_stack_defaults_pick_the_adapter_dtype(tiny):
    job = TrainingJob(method=Method.LORA, seq_len=64, peft=ALL)
    assert _estimate(tiny, job).job.peft.adapter_dtype is AdapterDtype.FP32
    assert _estimate(tiny, job, Stack.TORCHTUNE).job.peft.adapter_dtype is AdapterDtype.BF16
    assert DEFAULTS[Stack.TORCHTUNE].adapter_dtype is AdapterDtype.BF16
    explicit = replace(job, peft=replace(ALL, adapter_dtype=AdapterDtype.BF16))
    assert _estimate(tiny, explicit).job.peft.adapter_dtype is AdapterDtype.BF16


def test_bf16_adapters_halve_adapter_states(tiny):
    job = TrainingJob(method=Method.LORA, seq_len=64, precision=Precision.BF16, peft=ALL)
    bf16_peft = replace(ALL, adapter_dtype=AdapterDtype.BF16)
    fp32 = _estimate(tiny, job).model_states
    bf16 = _estimate(tiny, replace(job, peft=bf16_peft)).model_states
    assert 0 < bf16.optimizer_states_bytes * 2 == fp32.optimizer_states_bytes
    assert bf16.gradients_bytes * 2 == fp32.gradients_bytes
    assert bf16.master_weights_bytes == fp32.master_weights_bytes == 0
    # under a master-weight precision 16-bit adapters get fp32 masters and fp32 states (the trace agrees)
    mixed = _estimate(tiny, replace(job, precision=Precision.BF16_MIXED, peft=bf16_peft)).model_states
    assert mixed.master_weights_bytes == 2 * mixed.gradients_bytes > 0
    assert mixed.optimizer_states_bytes == fp32.optimizer_states_bytes


def test_dropout_adds_a_mask_and_a_copy_per_adapted_input(tiny):
    """bf16 adapters on bf16 weights: without dropout lora_A saves each distinct input once (the attention
    and MLP norms' outputs, down_proj's input; o_proj's is the attention output, saved anyway); with dropout
    every adapted linear saves its own dropped copy (2 B) and a bool mask (1 B)."""
    adapted = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    bf16 = replace(ALL, adapter_dtype=AdapterDtype.BF16)
    base = TrainingJob(method=Method.LORA, seq_len=64, precision=Precision.BF16, peft=bf16)
    drop = replace(base, peft=replace(bf16, lora_dropout=0.1))
    plain = training_activations(tiny, base, Layout(), adapted).layers_bytes
    dropped = training_activations(tiny, drop, Layout(), adapted).layers_bytes
    h, i, tokens, layers = 128, 256, 64, 2
    inputs = 3 * h + h + 2 * h + i  # q k v, o, gate up, down
    distinct = h + h + i
    assert dropped - plain == layers * tokens * ((2 + 1) * inputs - 2 * distinct)


def test_fp32_adapters_cast_each_input(tiny):
    """fp32 adapters on bf16 weights: one fp32 copy per adapted linear, whether or not inputs are shared."""
    adapted = frozenset({"q_proj", "v_proj"})
    qv = PeftSpec(lora_rank=8, lora_targets=("q_proj", "v_proj"))
    job = TrainingJob(method=Method.LORA, seq_len=64, precision=Precision.BF16, peft=qv)
    fp32 = training_activations(tiny, job, Layout(), adapted).layers_bytes
    bf16_job = replace(job, peft=replace(qv, adapter_dtype=AdapterDtype.BF16))
    bf16 = training_activations(tiny, bf16_job, Layout(), adapted).layers_bytes
    h, r, tokens, layers = 128, 8, 64, 2
    assert fp32 - bf16 == layers * tokens * (2 * 4 * (h + r) - (2 * h + 2 * 2 * r))


@pytest.mark.trace
@pytest.mark.parametrize(
    "case_id", ["llama-lora-dropout-all-linear", "llama-lora-bf16-adapters", "llama-lora-bf16-dropout"]
)
def test_against_the_trace(case_id):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from llmplan.validate import engines

    case = next(c for c in CASES if c.id == case_id)
    result = engines.compare_trace_case(case)
    assert result.error == ""
    assert abs(result.error_pct) < 1.5, result.main_differences()


def test_offloaded_activations_and_checkpoints_cross_the_host_link(tiny):
    """--offload-activations keeps one layer on the device, the rest in host RAM, and the time model moves
    them down in forward and up in backward; with full recompute the checkpoints are offloaded (unsloth)."""
    from llmplan.estimate.time import estimate_time

    cluster = Cluster(accelerator=catalog.accelerator("h100-sxm-80gb"), gpus_per_node=1, nodes=1)
    for recompute in (Recompute.NONE, Recompute.FULL):
        job = TrainingJob(seq_len=64, recompute=recompute)
        off = replace(job, activation_offload=True)
        kept = training_activations(tiny, job, Layout()).layers_bytes
        moved = training_activations(tiny, off, Layout())
        assert moved.layers_bytes == kept // 2 and moved.host_bytes == kept // 2
        est = estimate_training(tiny, off, Layout(), cluster)
        assert est.host_bytes >= moved.host_bytes
        names = {t.name for t in estimate_time(tiny, off, Layout(), cluster).comm}
        assert {"comm.offload_activations_d2h", "comm.offload_activations_h2d"} <= names
