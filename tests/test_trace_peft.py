"""Every PEFT method the trace supports runs, and trains exactly the parameters peft says."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from llmplan.adapters import parse_config  # noqa: E402
from llmplan.specs.training import Method, OptimizerImpl, PeftSpec, Precision, TrainingJob  # noqa: E402
from llmplan.trace import trace_training  # noqa: E402
from llmplan.trace.tracker import rounded  # noqa: E402

pytestmark = pytest.mark.trace

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


@pytest.fixture(scope="module")
def tiny():
    return parse_config(dict(TINY), "tiny-llama")


def _job(method: Method, **peft) -> TrainingJob:
    return TrainingJob(
        seq_len=16,
        method=method,
        precision=Precision.BF16,
        optimizer_impl=OptimizerImpl.FUSED,
        peft=PeftSpec(**peft),
    )


@pytest.mark.parametrize(
    "method",
    [
        Method.DORA,
        Method.ADALORA,
        Method.IA3,
        Method.PREFIX,
        Method.PROMPT,
        Method.PTUNING,
        Method.PTUNING_V2,
        Method.BITFIT,
        Method.LAYERNORM,
        Method.FREEZE,
    ],
)
def test_methods_trace(tiny, method):
    if method is Method.BITFIT:
        pytest.skip("Llama has no biases: nothing to train")
    result = trace_training(tiny, _job(method, freeze_layers=1))
    assert 0 < result.trainable_params < result.total_params
    assert result.peak.value("optimizer_states") > 0 or result.peak_phase != "optimizer"


def test_prompt_tuning_trains_only_virtual_tokens(tiny):
    result = trace_training(tiny, _job(Method.PROMPT, num_virtual_tokens=10))
    assert result.trainable_params == 10 * tiny.hidden_size


def test_qlora_counts_nf4_bytes(tiny):
    pytest.importorskip("torchao")
    lora = trace_training(tiny, _job(Method.LORA, lora_targets=("all-linear",), lora_rank=4))
    qlora = trace_training(tiny, _job(Method.QLORA, lora_targets=("all-linear",), lora_rank=4))
    assert qlora.trainable_params == lora.trainable_params
    # bf16 (2 bytes) -> NF4 codes (1/2 byte), an int8 scale per 64, a bf16 scale per 256 scales (fewer in tiny
    # tensors), a bf16 scalar mean and the 16-entry bf16 code table: five storages, each rounded to 512.
    expected = 0
    for n in (lin.weight_numel for block in tiny.layers for lin in block.linears):
        scalers = n // 64
        nf4 = (
            rounded(n // 2) + rounded(scalers) + rounded(2 * (scalers // math.gcd(scalers, 256))) + 512 + 512
        )
        expected += rounded(2 * n) - nf4
    assert lora.peak.value("weights") - qlora.peak.value("weights") == expected
