"""`llmplan emit accelerate`: the YAML loaded by accelerate's own code — `ClusterConfig.from_yaml_file`, then
`accelerate launch`'s argument parser and `_validate_launch_command` (which copies `fsdp_config` /
`deepspeed_config` into the launch arguments), the launcher's environment (`prepare_multi_gpu_env` /
`prepare_deepspeed_cmd_env`) and the plugin built from that environment (`FullyShardedDataParallelPlugin`,
`DeepSpeedPlugin`); each value as accelerate reads it equals the plan's, every key is one accelerate knows;
emit → `train --from` gives the same estimate byte for byte; plans it cannot express exit 2 naming the setting."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from llmplan.cli import main
from llmplan.emit import EmitError
from llmplan.emit import accelerate as acc
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

SPEC = load_model("llama-2-7b")

PLANS = {
    "1gpu-lora": (
        TrainingJob(method=Method.LORA, precision=Precision.AMP_BF16, micro_batch_size=4),
        Layout(),
    ),
    "1gpu-qlora": (
        TrainingJob(method=Method.QLORA, precision=Precision.BF16, recompute=Recompute.FULL),
        Layout(),
    ),
    "8gpu-zero3": (
        TrainingJob(micro_batch_size=2, grad_accum_steps=4, optimizer_impl=OptimizerImpl.FUSED),
        Layout(dp=8, zero=ZeroStage.PARAMETERS, stack=Stack.DEEPSPEED),
    ),
    "16gpu-zero3-nvme-fp16": (
        TrainingJob(precision=Precision.FP16_MIXED, grad_accum_steps=8),
        Layout(
            dp=16,
            zero=ZeroStage.PARAMETERS,
            offload_optimizer=OffloadTarget.NVME,
            offload_params=OffloadTarget.NVME,
            stack=Stack.DEEPSPEED,
        ),
    ),
    "16gpu-fsdp-cpu-offload": (
        TrainingJob(precision=Precision.AMP_BF16, recompute=Recompute.FULL),
        Layout(dp=16, fsdp=FsdpStrategy.FULL_SHARD, offload_params=OffloadTarget.CPU),
    ),
    "8gpu-ddp-fp32": (TrainingJob(precision=Precision.FP32), Layout(dp=8, stack=Stack.FSDP_ACCELERATE)),
    "16gpu-hybrid-shard": (
        TrainingJob(precision=Precision.AMP_BF16),
        Layout(dp=16, fsdp=FsdpStrategy.HYBRID_SHARD),
    ),
}


def _accelerate(tmp_path, text: str):
    """accelerate's own reading of the file: the config, the launch arguments, the launcher env."""
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    launch = pytest.importorskip("accelerate.commands.launch")
    utils = pytest.importorskip("accelerate.utils")
    path = tmp_path / "accelerate.yaml"
    path.write_text(text)
    cfg = config_args.ClusterConfig.from_yaml_file(str(path))
    parser = launch.launch_command_parser()
    args = parser.parse_args(["--config_file", str(path), "train.py"])
    args, defaults, from_config = launch._validate_launch_command(args)
    if args.use_deepspeed:  # as launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = utils.prepare_deepspeed_cmd_env(args)
    elif args.multi_gpu or args.use_fsdp:
        env = utils.prepare_multi_gpu_env(args)
    else:
        _, env = utils.prepare_simple_launcher_cmd_env(args)
    known = {a.dest for a in parser._actions}
    return cfg, args, env, known


@pytest.mark.parametrize("name", PLANS)
def test_accelerate_reads_every_key_as_planned(tmp_path, name: str) -> None:
    job, layout = PLANS[name]
    gpus_per_node = 8
    data = acc.config(SPEC, job, layout, gpus_per_node)
    cfg, args, env, known = _accelerate(tmp_path, acc.launch(SPEC, job, layout, gpus_per_node, "# h\n").text)
    assert cfg.num_processes == layout.num_gpus == int(env.get("WORLD_SIZE", args.num_processes))
    assert cfg.num_machines == max(1, layout.num_gpus // gpus_per_node)
    for section in ("fsdp_config", "deepspeed_config"):  # accelerate takes any key inside these silently
        unknown = set(data.get(section, {})) - known
        assert not unknown, f"{section}: keys accelerate launch does not know: {unknown}"
    ds_plan = layout.zero is not ZeroStage.NONE or layout.stack is Stack.DEEPSPEED
    expected_precision = {
        Precision.AMP_BF16: "bf16",
        Precision.BF16: "bf16",
        Precision.BF16_MIXED: "bf16",
        Precision.FP16_MIXED: "fp16",
        Precision.FP32: "no",
    }[job.precision]
    assert env["ACCELERATE_MIXED_PRECISION"] == expected_precision
    utils = pytest.importorskip("accelerate.utils")
    with mock.patch.dict(os.environ, env, clear=False):
        if ds_plan:
            assert args.use_deepspeed
            plugin = utils.DeepSpeedPlugin()
            z = plugin.deepspeed_config["zero_optimization"]
            assert z["stage"] == int(layout.zero)
            assert z["offload_optimizer"]["device"] == layout.offload_optimizer.value
            assert z["offload_param"]["device"] == layout.offload_params.value
            assert plugin.deepspeed_config["gradient_accumulation_steps"] == job.grad_accum_steps
            assert plugin.zero3_init_flag is (layout.zero is ZeroStage.PARAMETERS)
            # no size key: DeepSpeed's own defaults, which are the plan's stack's (checked by emit)
            assert not {k for k in z if "bucket" in k or k.startswith("stage3_p")}
            assert acc.size_mismatch(SPEC, layout) is None
        elif layout.fsdp is not None:
            assert args.use_fsdp
            dataclasses = pytest.importorskip("accelerate.utils.dataclasses")
            cuda = mock.patch.object(
                dataclasses, "get_torch_accelerator_backend", return_value=("cuda", None)
            )
            with cuda:  # the plugin refuses sync_module_states on a CPU-only machine
                plugin = utils.FullyShardedDataParallelPlugin()
            assert plugin.sharding_strategy.name == layout.fsdp.value.upper().replace("-", "_")
            assert plugin.cpu_offload.offload_params is (layout.offload_params is OffloadTarget.CPU)
            assert plugin.activation_checkpointing is (job.recompute is Recompute.FULL)
            assert plugin.backward_prefetch.name == "BACKWARD_PRE"
            assert plugin.forward_prefetch is False
        else:
            assert args.multi_gpu is (layout.num_gpus > 1)
            assert not args.use_fsdp and not args.use_deepspeed


@pytest.mark.parametrize(
    ("job", "layout", "setting"),
    [
        (TrainingJob(), Layout(dp=4, tp=4, pp=4, zero=ZeroStage.OPTIMIZER), "tp"),
        (TrainingJob(precision=Precision.AMP_BF16), Layout(dp=8, pp=8, fsdp=FsdpStrategy.FULL_SHARD), "pp"),
        (TrainingJob(), Layout(dp=8, zero=ZeroStage.PARAMETERS), "stack"),
        (TrainingJob(), Layout(dp=8, stack=Stack.TORCHTITAN, fsdp=FsdpStrategy.FULL_SHARD), "stack"),
        (TrainingJob(), Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD), "precision"),
        (
            TrainingJob(precision=Precision.AMP_BF16),
            Layout(dp=8, fsdp=FsdpStrategy.FULL_SHARD, offload_params=OffloadTarget.NVME),
            "offload",
        ),
        (TrainingJob(recompute=Recompute.SELECTIVE), Layout(), "recompute"),
        (TrainingJob(precision=Precision.BF16), Layout(dp=8, zero=ZeroStage.GRADIENTS), "precision"),
        (TrainingJob(precision=Precision.FP32, optimizer_impl=OptimizerImpl.FOR_LOOP), Layout(), "optimizer"),
    ],
)
def test_plans_accelerate_cannot_express_are_refused(job, layout, setting) -> None:
    with pytest.raises(EmitError) as err:
        acc.launch(SPEC, job, layout, 8, "")
    assert err.value.target == "accelerate" and err.value.setting == setting


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


ROUND_TRIPS = {
    "1gpu-lora": (
        ["llama-3.2-1b", "--method", "lora", "--precision", "amp-bf16", "--micro-batch", "4"],
        ["llama-3.2-1b", "--method", "lora", "--micro-batch", "4"],
    ),
    "1gpu-qlora-bf16": (
        ["llama-3.1-8b", "--method", "qlora", "--precision", "bf16", "--recompute", "full"],
        ["llama-3.1-8b", "--method", "qlora", "--precision", "bf16", "--recompute", "full"],
    ),
    "8gpu-zero3-deepspeed": (
        ["llama-2-7b", "--gpus", "8", "--zero", "3", "--stack", "deepspeed", "--grad-accum", "4"],
        ["llama-2-7b", "--stack", "deepspeed"],
    ),
    "16gpu-zero2-offload-fp16": (
        ["llama-2-13b", "--gpus", "16", "--zero", "2", "--precision", "fp16-mixed", "--offload", "optimizer"],
        ["llama-2-13b"],
    ),
    "16gpu-fsdp-cpu-offload": (
        [
            "llama-2-7b",
            "--gpus",
            "16",
            "--fsdp",
            "full-shard",
            "--offload",
            "params",
            "--precision",
            "amp-bf16",
            "--recompute",
            "full",
        ],
        ["llama-2-7b"],
    ),
}


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_round_trip_same_estimate_byte_for_byte(capsys, tmp_path, name: str) -> None:
    options, rest = ROUND_TRIPS[name]
    path = tmp_path / "accelerate.yaml"
    code, out, err = run(capsys, "emit", "accelerate", *options, "--out", str(path))
    assert code == 0, err
    assert path.read_text().startswith("# llmplan plan: ") and "launch: accelerate launch" in err
    code, direct, _ = run(capsys, "train", *options, "--json")
    assert code == 0
    code, back, err = run(capsys, "train", *rest, "--from", str(path), "--json")
    assert code == 0, err
    assert back == direct


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("distributed_type: XLA\nnum_processes: 8\n", "distributed_type"),
        ("distributed_type: FSDP\nnum_processes: 0\n", "num_processes"),
        ("distributed_type: MULTI_GPU\nnum_processes: 2\nmixed_precision: fp8\n", "mixed_precision"),
        (
            "distributed_type: FSDP\nnum_processes: 8\nfsdp_config:\n  fsdp_sharding_strategy: 9\n",
            "fsdp_config.fsdp_sharding_strategy",
        ),
        (
            "distributed_type: DEEPSPEED\nnum_processes: 8\ndeepspeed_config:\n  zero_stage: 3\n",
            "deepspeed_config.zero_stage",
        ),
        (
            "distributed_type: DEEPSPEED\nnum_processes: 8\ndeepspeed_config:\n  deepspeed_config_file: a.json\n",
            "deepspeed_config.deepspeed_config_file",
        ),
        (
            "distributed_type: DEEPSPEED\nnum_processes: 8\ndeepspeed_config:\n  offload_param_device: gpu\n",
            "deepspeed_config.offload_param_device",
        ),
    ],
)
def test_unreadable_accelerate_yaml_names_the_key(capsys, tmp_path, content, key) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(content)
    code, out, err = run(capsys, "train", "llama-2-7b", "--from", str(path))
    assert code == 2 and out == ""
    assert f"key '{key}'" in err and "Traceback" not in err


def test_emit_accelerate_refusal_exits_2(capsys) -> None:
    code, out, err = run(capsys, "emit", "accelerate", "llama-2-7b", "--gpus", "64", "--tp", "4", "--pp", "4")
    assert code == 2 and out == "" and "error: accelerate: tp: 4 " in err and "Traceback" not in err
