"""IA3 in the training estimate: peft's default targets are adapted, and a feed-forward target saves its input
in fp32 (peft/tuners/ia3/layer.py `Linear.forward`: `x.to(dtype)` of the fp32 vector, then `x * l`)."""

from __future__ import annotations

from conftest import LLAMA_2_7B

from llmplan.adapters import parse_config
from llmplan.estimate.training import adapted_linears
from llmplan.formulas.activations import training_activations
from llmplan.specs.training import Layout, Method, Precision, TrainingJob

LLAMA = parse_config(LLAMA_2_7B, "llama-2-7b (tests/conftest.py)")


def test_ia3_default_targets_are_adapted() -> None:
    names = adapted_linears(LLAMA, TrainingJob(method=Method.IA3))
    assert names == {"self_attn.k_proj", "self_attn.v_proj", "mlp.down_proj"}


def test_ia3_saves_the_fp32_feedforward_input_and_the_scaled_outputs() -> None:
    """Per token and layer: 4 · intermediate (down_proj's fp32 input) + 2 · 4096 for each of k and v (their
    bf16 outputs, saved by the scaling's product)."""
    job = TrainingJob(method=Method.IA3, precision=Precision.BF16, seq_len=1024)
    adapted = training_activations(LLAMA, job, Layout(), adapted_linears(LLAMA, job))
    bare = training_activations(LLAMA, job, Layout(), frozenset())
    assert adapted.per_layer_bytes - bare.per_layer_bytes == 1024 * (4 * 11008 + 2 * 2 * 4096)
