"""`llmplan emit TARGET` as a function: the launch config of the plan `llmplan train` estimates with the same
options (`emit.deepspeed`, `emit.peft`), and the web API's document of it (`schema.EmitOut`)."""

from __future__ import annotations

from llmplan.emit import LaunchConfig, Target, trainer
from llmplan.emit import accelerate as acc_emit
from llmplan.emit import deepspeed as ds
from llmplan.emit import peft as peft_emit
from llmplan.estimate.training import TrainingEstimate
from llmplan.schema import EmitOut
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec


def launch_config(target: Target, spec: ModelSpec, est: TrainingEstimate, cluster: Cluster) -> LaunchConfig:
    """The config of `target` for the estimated plan (EmitError when the target cannot express it)."""
    if target is Target.DEEPSPEED:
        return ds.launch(spec, est.job, est.layout, cluster.gpus_per_node)
    if target is Target.ACCELERATE:
        head = trainer.header(trainer.plan_lines(est))
        return acc_emit.launch(spec, est.job, est.layout, cluster.gpus_per_node, head)
    return peft_emit.launch(spec, est.job)


def emit_out(target: Target, spec: ModelSpec, est: TrainingEstimate, cluster: Cluster) -> EmitOut:
    """The config's file name and text, its launch command, and the plan it describes."""
    cfg = launch_config(target, spec, est, cluster)
    return EmitOut(
        target=cfg.target, filename=cfg.filename, text=cfg.text, launch=cfg.command, model=est.model,
        accelerator=est.accelerator, gpus=est.layout.num_gpus, device_bytes=est.device_bytes,
        capacity_bytes=est.capacity_bytes, fits=est.fits, trainable_params=est.trainable_params,
    )  # fmt: skip
