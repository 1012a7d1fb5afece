"""Communication buffers and loss dtype of distributed / remote-code training (formulas/model_states.py,
formulas/logits.py): FSDP mixed-precision units, DeepSpeed ZeRO-3's persistent parameters, buckets and
sub-group step, and Qwen v1's loss without the fp32 upcast."""

from __future__ import annotations

from conftest import LLAMA_2_7B

from llmplan.adapters import parse_config
from llmplan.formulas.logits import head_bytes
from llmplan.formulas.model_states import model_states, rank_inventory
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OptimizerImpl,
    PeftSpec,
    Precision,
    TrainingJob,
    ZeroStage,
)
from llmplan.stacks import DS_DEFAULT, DS_HF_AUTO

LLAMA = parse_config(LLAMA_2_7B, "llama-2-7b (tests/conftest.py)")
QWEN_7B = {
    "architectures": ["QWenLMHeadModel"],
    "model_type": "qwen",
    "vocab_size": 151936,
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "kv_channels": 128,
    "intermediate_size": 22016,
    "max_position_embeddings": 8192,
    "seq_length": 8192,
    "rotary_emb_base": 10000,
    "tie_word_embeddings": False,
}


def test_fsdp_amp_gathers_units_in_bf16() -> None:
    """accelerate's FSDP `mixed_precision: bf16` = MixedPrecision(param_dtype=bf16): fp32 shards, bf16 units."""
    inv = rank_inventory(LLAMA, 1, 1, 1, 0)
    job = TrainingJob(precision=Precision.AMP_BF16)
    ms = model_states(LLAMA, job, Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD))
    assert ms.gather_buffers_bytes == 2 * (inv.outer + 2 * inv.layer_max)
    assert ms.reduce_buffers_bytes == 2 * max(inv.layer_max, inv.outer)
    assert ms.weights_bytes == -(-4 * inv.total // 8)  # the shards stay fp32


def test_deepspeed_zero3_buckets_follow_hf_auto_values() -> None:
    auto = DS_HF_AUTO
    reduce_bucket = auto.reduce_bucket_zero3.elems(4096)
    prefetch, threshold = auto.prefetch_bucket.elems(4096), auto.persistence_threshold.elems(4096)
    assert (reduce_bucket, prefetch, threshold) == (4096**2, 15_099_494, 40_960)
    ms = model_states(LLAMA, TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS))
    assert ms.reduce_buffers_bytes == 2 * reduce_bucket


def test_deepspeed_zero3_gathers_nothing_on_one_gpu() -> None:
    ms = model_states(LLAMA, TrainingJob(), Layout(dp=1, zero=ZeroStage.PARAMETERS))
    assert ms.gather_buffers_bytes == 0


def test_deepspeed_zero3_keeps_head_gathered_across_the_turn() -> None:
    """Qwen-7B: head 151936 × 4096 (622 M) is reused at once by its backward; 2 · head > 1e9 elements of reuse
    distance, so the last layer is released after its forward."""
    qwen = parse_config(QWEN_7B, "qwen-7b (inline)")
    ms = model_states(qwen, TrainingJob(), Layout(dp=2, zero=ZeroStage.PARAMETERS))
    assert ms.gather_buffers_bytes == 2 * (151936 * 4096 + DS_HF_AUTO.prefetch_bucket.elems(4096))


def test_deepspeed_zero3_step_casts_one_sub_group_to_fp32() -> None:
    """The 16-bit gradient partition stays; one sub-group (1e9 elements) is flattened (2 B) and cast (4 B)."""
    job = TrainingJob(precision=Precision.BF16_MIXED, optimizer_impl=OptimizerImpl.FUSED)
    ms = model_states(LLAMA, job, Layout(dp=2, zero=ZeroStage.PARAMETERS))
    assert ms.step_gradients_bytes == ms.gradients_bytes + min(DS_DEFAULT.sub_group, ms.trainable_on_rank) * 6
    small = model_states(LLAMA, job, Layout(dp=8, zero=ZeroStage.PARAMETERS))
    assert small.trainable_on_rank < DS_DEFAULT.sub_group
    assert small.step_gradients_bytes == small.gradients_bytes + small.trainable_on_rank * 6


def test_deepspeed_zero3_lora_matrices_below_threshold_stay_whole() -> None:
    """r = 8 LoRA on Llama-2-7B: A (8 × 4096) and B (4096 × 8) are 32768 <= 10·h elements: unpartitioned."""
    job = TrainingJob(method=Method.LORA, peft=PeftSpec(lora_targets=("q_proj", "v_proj"), lora_rank=8))
    sharded = model_states(LLAMA, job, Layout(dp=8, zero=ZeroStage.PARAMETERS))
    plain = model_states(LLAMA, job, Layout(dp=8))
    norms = (2 * 32 + 1) * 4096
    lora = 32 * 2 * (8 * 4096 + 4096 * 8)
    persistent = 2 * (norms + lora)
    assert sharded.weights_bytes > -(-plain.weights_bytes // 8)
    assert sharded.weights_bytes - persistent + -(-persistent // 8) == -(-plain.weights_bytes // 8)


def test_qwen_loss_runs_in_the_model_dtype() -> None:
    """Qwen v1's remote code: CrossEntropyLoss on the bf16 logits, no upcast (2 B log-softmax, 2 × 2 B grads)."""
    qwen = parse_config(QWEN_7B, "qwen-7b (inline)")
    assert qwen.loss_fp32_upcast is False
    assert LLAMA.loss_fp32_upcast is True
    common = dict(
        tokens=8192,
        vocab=151936,
        hidden=4096,
        compute_bytes=2,
        norm_per_token_bytes=0,
        head_input_bytes=0,
        tp=1,
        sequence_parallel=False,
        chunked=False,
    )
    fp32 = head_bytes(**common)
    bf16 = head_bytes(**common, loss_elem_bytes=2)
    assert fp32.loss_bytes - bf16.loss_bytes == 8192 * 151936 * 2
    assert bf16.backward_transient_bytes == 2 * 8192 * 151936 * 2
    assert bf16.logits_bytes == fp32.logits_bytes
