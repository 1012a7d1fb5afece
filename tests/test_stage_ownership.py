"""Pipeline stages own their layers, embeddings and head, trained or frozen: a stage of frozen layers holds no
gradients, the stage of the trained ones all of them. Expected values are counted by hand from Llama-2-7B's
published shapes (h 4096, I 11008, 32 layers, vocab 32000, untied head)."""

from __future__ import annotations

import pytest

from llmplan.formulas.inventory import rank_trainable
from llmplan.formulas.model_states import model_states
from llmplan.formulas.params import count_params
from llmplan.formulas.peft import trainable_params
from llmplan.loading import load_model
from llmplan.specs.training import Layout, Method, PeftSpec, Precision, TrainingJob

H, FFN, V = 4096, 11008, 32000
LAYER = 4 * H * H + 3 * H * FFN + 2 * H  # q, k, v, o; gate, up, down; two RMSNorm weights: 202,383,360
EMBED = V * H
HEAD = V * H
FINAL_NORM = H


def test_hand_count_of_one_layer():
    assert LAYER == 202_383_360


def test_frozen_first_half_puts_every_gradient_on_the_last_stage():
    model = load_model("llama-2-7b")
    job = TrainingJob(method=Method.FREEZE, precision=Precision.BF16, peft=PeftSpec(freeze_layers=16))
    layout = Layout(pp=2)
    first, last = (model_states(model, job, layout, stage=s) for s in (0, 1))
    # stage 0: embedding + layers 0-15, all frozen; stage 1: layers 16-31, final norm and head, all trained
    assert first.gradients_bytes == 0
    assert last.gradients_bytes == 2 * (16 * LAYER + FINAL_NORM + HEAD)  # 6,738,419,712 B = 6.28 GiB
    assert first.weights_bytes == 2 * (EMBED + 16 * LAYER)
    assert last.weights_bytes == 2 * (16 * LAYER + FINAL_NORM + HEAD)
    assert first.optimizer_states_bytes == 0
    assert last.optimizer_states_bytes == 2 * 2 * (16 * LAYER + FINAL_NORM + HEAD)  # AdamW, bf16 states


@pytest.mark.parametrize("method", [Method.FULL, Method.FREEZE, Method.BITFIT])
@pytest.mark.parametrize("pp", [1, 2, 3, 5])
@pytest.mark.parametrize("ref", ["llama-2-7b", "gpt2", "bloom-560m", "qwen3-30b-a3b"])
def test_stages_add_up_to_the_trainable_count(ref, pp, method):
    """Over all stages (tp = ep = 1) the stage-owned trainable elements are peft's count, whatever the split;
    a tied head's copy on the last stage (pp > 1) is the frozen embedding, not a second trainable tensor."""
    model = load_model(ref)
    job = TrainingJob(method=method, peft=PeftSpec(freeze_layers=model.num_hidden_layers // 2))
    if method is Method.BITFIT and not count_params(model).biases:
        pytest.skip("no biases to train")
    expected = trainable_params(model, job).base_trainable
    total = sum(sum(rank_trainable(model, job, 1, 1, pp, s)) for s in range(pp))
    # full training also trains the tied head's second copy that Megatron keeps on the last stage
    tied_copy = model.vocab_size * model.hidden_size if model.tie_word_embeddings else 0
    assert total == expected + (tied_copy if pp > 1 and method is Method.FULL else 0)


def test_prompt_tuning_lives_on_the_first_stage():
    """The soft prompt is an embedding: 20 virtual tokens × h 4096 fp32 weights on stage 0, nothing after."""
    model = load_model("llama-2-7b")
    job = TrainingJob(method=Method.PROMPT, precision=Precision.BF16, peft=PeftSpec(num_virtual_tokens=20))
    first, last = (model_states(model, job, Layout(pp=2), stage=s) for s in (0, 1))
    assert first.gradients_bytes == 4 * 20 * H
    assert last.gradients_bytes == 0
    assert last.weights_bytes == 2 * (16 * LAYER + FINAL_NORM + HEAD)  # frozen base only
