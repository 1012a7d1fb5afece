"""`llmplan emit deepspeed`: the JSON loaded by DeepSpeed's own `DeepSpeedConfig` (world size = the plan's
data-parallel degree through an mpu), each key as DeepSpeed reads it equal to the plan's value; plans a DeepSpeed
config cannot express refused naming the setting."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from llmplan.emit import EmitError
from llmplan.emit import deepspeed as ds
from llmplan.loading import load_model
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    OptimizerImpl,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
    ZeroStage,
)
from llmplan.stacks import resolve

SPEC = load_model("llama-2-7b")

PLANS = {
    "1gpu-lora": (TrainingJob(method=Method.LORA, micro_batch_size=4, grad_accum_steps=8), Layout()),
    "1gpu-qlora": (
        TrainingJob(method=Method.QLORA, micro_batch_size=2, recompute=Recompute.FULL),
        Layout(stack=Stack.DEEPSPEED),
    ),
    "8gpu-zero3": (
        TrainingJob(micro_batch_size=2, grad_accum_steps=4, optimizer_impl=OptimizerImpl.FUSED),
        Layout(dp=8, zero=ZeroStage.PARAMETERS),
    ),
    "8gpu-zero3-deepspeed-offload": (
        TrainingJob(precision=Precision.FP16_MIXED, optimizer_impl=OptimizerImpl.FOR_LOOP),
        Layout(
            dp=8,
            zero=ZeroStage.PARAMETERS,
            offload_optimizer=OffloadTarget.CPU,
            offload_params=OffloadTarget.CPU,
            stack=Stack.DEEPSPEED,
        ),
    ),
    "16gpu-zero3-nvme": (
        TrainingJob(precision=Precision.FP32, micro_batch_size=1, grad_accum_steps=16),
        Layout(
            dp=16,
            zero=ZeroStage.PARAMETERS,
            offload_optimizer=OffloadTarget.NVME,
            offload_params=OffloadTarget.NVME,
        ),
    ),
}


class _Mpu:
    def __init__(self, dp: int) -> None:
        self.dp = dp

    def get_data_parallel_world_size(self) -> int:
        return self.dp


def _load(data: dict, dp: int):
    """DeepSpeed's own config loader for `dp` data-parallel ranks (no process group needed)."""
    config = pytest.importorskip("deepspeed.runtime.config")
    dist = pytest.importorskip("deepspeed.comm")
    with mock.patch.object(dist, "get_rank", return_value=0):
        return config.DeepSpeedConfig(data, mpu=_Mpu(dp))


@pytest.mark.parametrize("name", PLANS)
def test_deepspeed_reads_every_key_as_planned(name: str) -> None:
    job, layout = PLANS[name]
    data = ds.config(SPEC, job, layout)
    cfg = _load(json.loads(json.dumps(data)), layout.dp)
    st = resolve(layout, SPEC.hidden_size)
    assert cfg.world_size == layout.dp
    assert cfg.train_micro_batch_size_per_gpu == job.micro_batch_size
    assert cfg.gradient_accumulation_steps == job.grad_accum_steps
    assert cfg.train_batch_size == job.micro_batch_size * job.grad_accum_steps * layout.dp
    assert cfg.bfloat16_config.enabled is (job.precision is Precision.BF16_MIXED)
    assert cfg.float16_config.enabled is (job.precision is Precision.FP16_MIXED)
    z = cfg.zero_config
    assert cfg.zero_optimization_stage == int(layout.zero)
    if layout.zero is not ZeroStage.NONE:
        assert z.reduce_bucket_size == st.ds_reduce_bucket_elems
    if layout.zero is ZeroStage.PARAMETERS:
        assert z.prefetch_bucket_size == st.ds_prefetch_elems
        assert z.param_persistence_threshold == st.ds_persistence_threshold_elems
        assert z.max_live_parameters == st.ds_max_live_elems
        assert z.max_reuse_distance == st.ds_max_reuse_elems
        assert z.sub_group_size == st.ds_sub_group_elems
    opt = (
        getattr(z.offload_optimizer.device, "value", z.offload_optimizer.device)
        if z.offload_optimizer
        else "none"
    )
    par = getattr(z.offload_param.device, "value", z.offload_param.device) if z.offload_param else "none"
    assert (opt, par) == (layout.offload_optimizer.value, layout.offload_params.value)
    if layout.offload_optimizer is OffloadTarget.NVME:
        assert z.offload_optimizer.buffer_count == st.ds_nvme_optimizer_buffers
        assert str(z.offload_optimizer.nvme_path) == ds.NVME_PATH
    if layout.offload_params is OffloadTarget.NVME:
        assert z.offload_param.buffer_count == st.ds_nvme_param_buffers
        assert z.offload_param.buffer_size == st.ds_nvme_param_buffer_elems
    assert cfg.optimizer_name == "adamw"
    torch_adam = job.optimizer_impl is not OptimizerImpl.FUSED
    assert cfg.optimizer_params.get("torch_adam", False) is torch_adam
    if torch_adam:
        assert cfg.optimizer_params["foreach"] is (job.optimizer_impl is OptimizerImpl.FOREACH)
    # the read-back gives the plan's fields again
    back = ds.read(data, "x.json")
    assert (back.micro_batch, back.grad_accum, back.dp, back.zero) == (
        job.micro_batch_size,
        job.grad_accum_steps,
        layout.dp,
        int(layout.zero),
    )
    assert (back.precision, back.optimizer_impl) == (job.precision, job.optimizer_impl)


def test_zero3_sizes_are_the_stacks_not_restated() -> None:
    """hf-trainer's ZeRO-3 sizes are transformers' "auto" rules at h = 4096; deepspeed's are DeepSpeed's."""
    hf = ds.config(SPEC, TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS))["zero_optimization"]
    raw = ds.config(SPEC, TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS, stack=Stack.DEEPSPEED))
    assert hf["reduce_bucket_size"] == 4096 * 4096
    assert hf["stage3_prefetch_bucket_size"] == int(0.9 * 4096 * 4096)
    assert hf["stage3_param_persistence_threshold"] == 10 * 4096
    assert raw["zero_optimization"]["reduce_bucket_size"] == 500_000_000


@pytest.mark.parametrize(
    ("job", "layout", "setting"),
    [
        (TrainingJob(), Layout(dp=4, tp=4, pp=4, zero=ZeroStage.OPTIMIZER), "tp"),
        (TrainingJob(), Layout(dp=8, pp=2, zero=ZeroStage.PARAMETERS), "pp"),
        (TrainingJob(), Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD, offload_params=OffloadTarget.CPU), "fsdp"),
        (TrainingJob(), Layout(dp=8, stack=Stack.MEGATRON), "stack"),
        (TrainingJob(precision=Precision.BF16), Layout(), "precision"),
        (TrainingJob(recompute=Recompute.SELECTIVE), Layout(), "recompute"),
        (TrainingJob(optimizer_impl=OptimizerImpl.IN_BACKWARD), Layout(), "optimizer_impl"),
        (TrainingJob(), Layout(dp=2, offload_optimizer=OffloadTarget.CPU), "offload"),
    ],
)
def test_refuses_what_deepspeed_cannot_express(job, layout, setting) -> None:
    with pytest.raises(EmitError) as err:
        ds.config(SPEC, job, layout)
    assert err.value.target == "deepspeed" and err.value.setting == setting
    assert str(err.value).startswith(f"deepspeed: {setting}: ")


def test_pipeline_under_zero3_names_deepspeeds_own_rule() -> None:
    with pytest.raises(EmitError, match="refuses ZeRO-2/3"):
        ds.config(SPEC, TrainingJob(), Layout(dp=8, pp=2, zero=ZeroStage.PARAMETERS))


def test_launch_command_spans_nodes() -> None:
    job, layout = PLANS["16gpu-zero3-nvme"]
    cmd = ds.launch(SPEC, job, layout, gpus_per_node=8).command
    assert cmd.startswith("deepspeed --num_nodes 2 --num_gpus 8 --hostfile hostfile train.py --deepspeed ")
    assert "--gradient_accumulation_steps 16" in cmd
