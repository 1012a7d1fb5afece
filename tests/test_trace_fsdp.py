"""FSDP full shard simulated on fake process groups of 2 and 4 ranks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from llmplan.adapters import parse_config  # noqa: E402
from llmplan.errors import LlmplanError  # noqa: E402
from llmplan.specs.training import FsdpStrategy, Layout, OptimizerImpl, Precision, TrainingJob  # noqa: E402
from llmplan.trace import trace_training  # noqa: E402

pytestmark = pytest.mark.trace

TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 6,
    "vocab_size": 1024,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}
JOB = TrainingJob(seq_len=32, precision=Precision.BF16, optimizer_impl=OptimizerImpl.FOR_LOOP)


@pytest.fixture(scope="module")
def tiny():
    return parse_config(dict(TINY), "tiny-llama")


@pytest.fixture(scope="module")
def single(tiny):
    return trace_training(tiny, JOB)


@pytest.mark.parametrize("ranks", [2, 4])
def test_fsdp_shards_model_states(tiny, single, ranks):
    layout = Layout(dp=ranks, fsdp=FsdpStrategy.FULL_SHARD)
    sharded = trace_training(tiny, JOB, layout=layout)
    assert sharded.ranks == ranks
    weights_1 = single.timeline[0].end_bytes
    weights_n = sharded.timeline[0].end_bytes
    # Every tensor split in dim-0 shards (padded to a multiple of the ranks), each shard 512-rounded.
    assert weights_1 / ranks <= weights_n <= weights_1 / ranks * 1.1
    states_1 = [p for p in single.timeline if p.phase == "optimizer"][-1].end_bytes - weights_1
    states_n = [p for p in sharded.timeline if p.phase == "optimizer"][-1].end_bytes - weights_n
    assert states_1 / ranks <= states_n <= states_1 / ranks * 1.1
    assert sharded.total < single.total
    w1, wn = single.peak.value("weights"), sharded.peak.value("weights")
    assert w1 / ranks <= wn <= w1 / ranks * 1.1


def test_fsdp_multi_tensor_optimizer_refused(tiny):
    layout = Layout(dp=2, fsdp=FsdpStrategy.FULL_SHARD)
    with pytest.raises(LlmplanError, match="for-loop"):
        trace_training(tiny, TrainingJob(seq_len=32), layout=layout)


def test_other_layouts_refused(tiny):
    with pytest.raises(LlmplanError, match="tensor, pipeline"):
        trace_training(tiny, JOB, layout=Layout(tp=2))
    with pytest.raises(LlmplanError, match="DDP"):
        trace_training(tiny, JOB, layout=Layout(dp=2))
