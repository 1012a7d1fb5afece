"""FLOPs of a training step against torch.utils.flop_counter.FlopCounterMode on the real transformers model.

The model is built from its config under fake tensors (no weights), with eager attention: on the CPU the fused
SDPA op is not counted by FlopCounterMode, the explicit Q·K^T and P·V bmm products are. Eager multiplies the
whole s × s square, which `formulas.flops` models for AttentionImpl.EAGER.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from llmplan.adapters import parse_config  # noqa: E402
from llmplan.formulas.flops import Pass, step_ops  # noqa: E402
from llmplan.formulas.peft import lora_target_linears  # noqa: E402
from llmplan.specs.training import AttentionImpl, Method, PeftSpec, Precision, Recompute, TrainingJob  # noqa: E402

pytestmark = pytest.mark.trace

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "num_hidden_layers": 3,
    "vocab_size": 1000,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
CASES = {
    "dense": LLAMA,
    "gqa-tied": {**LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "mqa-gpt-bigcode": {
        "architectures": ["GPTBigCodeForCausalLM"],
        "model_type": "gpt_bigcode",
        "vocab_size": 1000,
        "n_embd": 128,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 512,
        "multi_query": True,
    },
    "moe-mixtral": {
        **LLAMA,
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "num_key_value_heads": 2,
    },
}


def _counted(config: dict, job: TrainingJob) -> tuple[float, float]:
    """(forward, whole step) FLOPs FlopCounterMode counts for one micro-batch."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from llmplan.trace.build import build_model, prepare_training

    spec = parse_config(dict(config), "case")
    with FakeTensorMode():
        dtype = "float32" if job.precision is Precision.FP32 else "bfloat16"
        model = build_model(spec, dtype=dtype, attention="eager")
        model = prepare_training(model, spec, job)
        model.train()
        ids = torch.zeros((job.micro_batch_size, job.seq_len), dtype=torch.long)
        counter = FlopCounterMode(
            display=False, custom_mapping={torch.ops.aten._grouped_mm: _grouped_mm_flops}
        )
        with counter:
            loss = model(input_ids=ids, labels=ids).loss
            forward = counter.get_total_flops()
            loss.backward()
        return float(forward), float(counter.get_total_flops())


def _grouped_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """FlopCounterMode has no formula for the grouped products of fused experts (aten._grouped_mm): 2 · output
    elements · the inner dimension; an output of G groups (weight gradients) splits its inner dimension over
    the groups, each group multiplying only its own tokens."""
    inner = a_shape[-1]
    elements = 1
    for d in out_shape:
        elements *= d
    groups = out_shape[0] if len(out_shape) == 3 and len(a_shape) == 2 and len(b_shape) == 2 else 1
    return 2 * elements * inner // groups


def _ours(config: dict, job: TrainingJob) -> tuple[float, float]:
    spec = parse_config(dict(config), "case")
    adapted = frozenset()
    if job.method is Method.LORA:
        adapted = frozenset(lin.name for _, lin in lora_target_linears(spec, job.peft.lora_targets))
    ops = step_ops(spec, job, adapted)
    return ops.flops(Pass.FORWARD), ops.total


def _job(**kw) -> TrainingJob:
    base = dict(micro_batch_size=2, seq_len=64, attention=AttentionImpl.EAGER, precision=Precision.FP32)
    return TrainingJob(**{**base, **kw})


@pytest.mark.parametrize("case", list(CASES))
def test_full_training_flops_match_flop_counter(case: str):
    config = CASES[case]
    # grouped-mm experts (transformers v5) run in bf16 only
    job = _job(precision=Precision.BF16 if case.startswith("moe") else Precision.FP32)
    counted_fwd, counted = _counted(config, job)
    fwd, total = _ours(config, job)
    assert fwd == pytest.approx(counted_fwd, rel=0.01)
    assert total == pytest.approx(counted, rel=0.01)


@pytest.mark.parametrize("targets", [("q_proj", "v_proj"), ("all-linear",)])
def test_lora_flops_skip_frozen_weight_gradients(targets: tuple[str, ...]):
    job = _job(method=Method.LORA, peft=PeftSpec(lora_rank=8, lora_targets=targets))
    counted_fwd, counted = _counted(LLAMA, job)
    fwd, total = _ours(LLAMA, job)
    assert fwd == pytest.approx(counted_fwd, rel=0.01)
    assert total == pytest.approx(counted, rel=0.01)
    full = _ours(LLAMA, _job())[1]
    assert total < full


def test_full_recompute_adds_one_forward_of_the_layers():
    job = _job(recompute=Recompute.FULL)
    _, counted = _counted(LLAMA, job)
    _, total = _ours(LLAMA, job)
    assert total == pytest.approx(counted, rel=0.01)
