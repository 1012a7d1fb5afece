"""The training stack is an input (`Layout.stack`, `--stack`): each stack's defaults are data
(`llmplan.stacks`), resolved in the estimate, printed, and they move the numbers they should."""

from __future__ import annotations

import pytest
from conftest import LLAMA_2_7B
from test_training_buffers import QWEN_7B

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.cli import main
from llmplan.errors import LayoutError
from llmplan.estimate.training import estimate_training
from llmplan.formulas.model_states import model_states, rank_inventory
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import FsdpStrategy, Layout, Precision, Stack, TrainingJob, ZeroStage
from llmplan.stacks import DEFAULTS, DS_DEFAULT, resolve

LLAMA = parse_config(LLAMA_2_7B, "llama-2-7b (tests/conftest.py)")
H100x8 = Cluster(accelerator=catalog.accelerator("h100-sxm-80gb"), gpus_per_node=8, nodes=1)


def test_every_stack_has_defaults_with_a_source() -> None:
    assert set(DEFAULTS) == set(Stack)
    assert all(d.source and d.stack is s for s, d in DEFAULTS.items())


def test_default_stack_is_the_hf_trainer_with_auto_zero3_buckets() -> None:
    st = resolve(Layout(dp=8, zero=ZeroStage.PARAMETERS), 4096)
    assert Layout().stack is Stack.HF_TRAINER
    assert (st.ds_reduce_bucket_elems, st.ds_prefetch_elems, st.ds_persistence_threshold_elems) == (
        4096 * 4096,
        int(0.9 * 4096 * 4096),
        10 * 4096,
    )
    assert not st.autocast  # DeepSpeed's engine casts the model: no autocast under ZeRO
    assert resolve(Layout(), 4096).autocast


def test_plain_deepspeed_uses_its_own_config_defaults() -> None:
    """deepspeed.initialize without "auto": reduce_bucket_size 5e8 elements, a 1 GB bf16 bucket."""
    layout = Layout(dp=8, zero=ZeroStage.PARAMETERS, stack=Stack.DEEPSPEED)
    ms = model_states(LLAMA, TrainingJob(), layout, stack=resolve(layout, LLAMA.hidden_size))
    assert ms.reduce_buffers_bytes == 2 * DS_DEFAULT.reduce_bucket_zero3 == 2 * 500_000_000
    hf = model_states(LLAMA, TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS))
    assert hf.reduce_buffers_bytes == 2 * 4096 * 4096


def test_pure_bf16_loss_dtype_follows_the_stack() -> None:
    """Qwen v1's own loss does not upcast: under the HF Trainer's autocast the loss runs in fp32, in a plain
    PyTorch loop (model.to(bf16), no autocast) in bf16, with torchtitan's own loss in fp32 again."""
    qwen = parse_config(QWEN_7B, "qwen-7b (inline)")
    job = TrainingJob(precision=Precision.BF16)
    one = Cluster(accelerator=catalog.accelerator("h100-sxm-80gb"), gpus_per_node=1, nodes=1)
    loss = {
        s: estimate_training(qwen, job, Layout(stack=s), one).activations.logits_loss_bytes
        for s in (Stack.HF_TRAINER, Stack.PYTORCH, Stack.TORCHTITAN)
    }
    assert loss[Stack.PYTORCH] < loss[Stack.HF_TRAINER] == loss[Stack.TORCHTITAN]


def test_fsdp_gather_dtype_follows_the_mixed_precision_policy() -> None:
    """amp-bf16 under FSDP: accelerate gathers bf16 units, a plain FSDP2 without a policy fp32 ones."""
    inv = rank_inventory(LLAMA, 1, 1, 1, 0)
    job = TrainingJob(precision=Precision.AMP_BF16)
    plain = Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD, stack=Stack.PYTORCH)
    ms = model_states(LLAMA, job, plain, stack=resolve(plain, LLAMA.hidden_size))
    assert ms.gather_buffers_bytes == 4 * (inv.outer + 2 * inv.layer_max)


def test_megatron_keeps_no_ddp_bucket_copy() -> None:
    layout = Layout(dp=8, stack=Stack.MEGATRON)
    assert model_states(LLAMA, TrainingJob(), layout).reduce_buffers_bytes == 0
    assert model_states(LLAMA, TrainingJob(), Layout(dp=8)).reduce_buffers_bytes > 0


@pytest.mark.parametrize(
    ("layout", "field"),
    [
        (Layout(dp=8, zero=ZeroStage.PARAMETERS, stack=Stack.TORCHTITAN), "zero"),
        (Layout(dp=8, zero=ZeroStage.GRADIENTS, stack=Stack.MEGATRON), "zero"),
        (Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD, stack=Stack.DEEPSPEED), "fsdp"),
    ],
)
def test_a_stack_refuses_sharding_it_cannot_run(layout: Layout, field: str) -> None:
    with pytest.raises(LayoutError, match=f"^{field}: .*{layout.stack.value}"):
        estimate_training(LLAMA, TrainingJob(), layout, H100x8)


def test_cli_prints_the_stack_defaults(capsys) -> None:
    assert main(["train", "llama-2-7b", "--gpus", "8", "--zero", "3", "--stack", "deepspeed"]) == 0
    out = capsys.readouterr().out
    assert "stack deepspeed" in out
    assert "reduce_bucket_size 500,000,000" in out
    assert main(["train", "llama-2-7b", "--gpus", "8", "--zero", "3", "--stack", "torchtitan"]) == 2
    assert "torchtitan" in capsys.readouterr().err
