"""`llmplan train` as a function: option values -> the training estimate, its suggestions, time and cost, and
the `--json` document (`schema.TrainOut`). The CLI (`cli/train.py`) and the web API (`web/`) both call it, so a
page shows exactly what the command prints.

`TrainOptions` holds every option that changes the estimate, under the CLI's parameter names; its defaults are
the CLI's (`cli/train.py` declares them once; the web request model is derived from that signature).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from llmplan import catalog
from llmplan.api import options as o
from llmplan.breakdown import Term
from llmplan.estimate.cost import CostEstimate, estimate_run
from llmplan.estimate.error_bands import ErrorBand, device_band
from llmplan.estimate.suggest import Suggestion, suggest
from llmplan.estimate.time import TimeEstimate, estimate_time
from llmplan.estimate.training import TrainingEstimate, estimate_training
from llmplan.limits import tight_headroom
from llmplan.schema import ErrorBandOut, SuggestionOut, TrainOut
from llmplan.specs.hardware import Accelerator, Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    AdapterDtype,
    AttentionImpl,
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PipelineSchedule,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainOptions:
    """The options of `llmplan train` that change the estimate (names of `cli.train.train`'s parameters)."""

    method: Method
    lora_rank: int
    lora_alpha: float
    lora_targets: str
    lora_dropout: float
    adapter_dtype: AdapterDtype | None
    num_virtual_tokens: int
    precision: Precision
    optimizer: Optimizer
    optimizer_impl: OptimizerImpl
    micro_batch: int
    seq_len: int
    grad_accum: int
    recompute: Recompute
    attention: AttentionImpl
    packing: bool
    chunked_ce: bool
    offload_activations: bool
    gpu: str
    gpus: int
    gpus_per_node: int
    nodes: int | None
    cluster_id: str | None
    dp: int | None
    tp: int
    pp: int
    cp: int
    ep: int
    sequence_parallel: bool
    zero: int
    fsdp: FsdpStrategy | None
    stack: Stack
    offload: o.OffloadWhat | None
    offload_target: OffloadTarget
    pp_schedule: PipelineSchedule
    virtual_stages: int
    tokens: str | None
    epochs: float | None
    dataset_tokens: str | None
    price: float | None

    @classmethod
    def of(cls, values: dict[str, object]) -> TrainOptions:
        """The options among `values` (a command's parameters; other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainRun:
    """A validated training job and its memory estimate."""

    spec: ModelSpec
    job: TrainingJob
    layout: Layout
    cluster: Cluster
    accelerator: Accelerator
    estimate: TrainingEstimate
    train_tokens: float | None
    network_note: str
    """What was assumed about the network between nodes ("" when nothing was)."""


def check(opts: TrainOptions) -> None:
    """Every numeric option inside its bound (InvalidInputError listing all that are not)."""
    o.check_options(
        lora_rank=opts.lora_rank, lora_dropout=opts.lora_dropout, lora_alpha=opts.lora_alpha,
        num_virtual_tokens=opts.num_virtual_tokens, micro_batch=opts.micro_batch, seq_len=opts.seq_len,
        grad_accum=opts.grad_accum, gpus=opts.gpus, gpus_per_node=opts.gpus_per_node, dp=opts.dp, tp=opts.tp,
        pp=opts.pp, cp=opts.cp, ep=opts.ep, zero=opts.zero, nodes=opts.nodes, price=opts.price,
        virtual_stages=opts.virtual_stages,
    )  # fmt: skip


def prepare(spec: ModelSpec, opts: TrainOptions) -> TrainRun:
    """The job, layout and cluster of the (checked) options, and the memory estimate."""
    if opts.cluster_id is not None:
        cluster = o.preset_cluster(opts.cluster_id, opts.gpus, opts.nodes)
        acc, gpus, network_note = cluster.accelerator, cluster.num_gpus, ""
    else:
        acc = catalog.accelerator(opts.gpu)
        gpus = o.total_gpus(opts.gpus, opts.nodes, opts.gpus_per_node)
        cluster, network_note = o.cluster_network(o.node_cluster(acc, gpus, opts.gpus_per_node))
    job = o.training_job(
        method=opts.method, precision=opts.precision, optimizer=opts.optimizer,
        optimizer_impl=opts.optimizer_impl, micro_batch=opts.micro_batch, seq_len=opts.seq_len,
        grad_accum=opts.grad_accum, recompute=opts.recompute, attention=opts.attention,
        lora_rank=opts.lora_rank, lora_alpha=opts.lora_alpha, lora_targets=opts.lora_targets,
        num_virtual_tokens=opts.num_virtual_tokens, packing=opts.packing, chunked_ce=opts.chunked_ce,
        lora_dropout=opts.lora_dropout, adapter_dtype=opts.adapter_dtype,
        activation_offload=opts.offload_activations,
    )  # fmt: skip
    train_tokens = o.run_tokens(opts.tokens, opts.epochs, opts.dataset_tokens)
    lay = o.training_layout(
        gpus, opts.dp, opts.tp, opts.pp, opts.cp, opts.ep, opts.sequence_parallel, opts.zero, opts.fsdp,
        opts.offload, opts.offload_target, opts.stack,
    )  # fmt: skip
    lay = o.with_schedule(lay, opts.pp_schedule, opts.virtual_stages)
    est = estimate_training(spec, job, lay, cluster)
    return TrainRun(
        spec=spec, job=job, layout=lay, cluster=cluster, accelerator=acc, estimate=est,
        train_tokens=train_tokens, network_note=network_note,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainResult:
    """What `llmplan train` prints: the run, the suggestions with their commands, the time and the cost."""

    run: TrainRun
    tips: tuple[tuple[Suggestion, str], ...]
    timing: TimeEstimate
    cost: CostEstimate | None

    @property
    def band(self) -> tuple[ErrorBand, Term] | None:
        """The expected error of the device figure (`estimate.error_bands`)."""
        est = self.run.estimate
        return device_band(est.job, est.layout, est.device_bytes)

    @property
    def tight(self) -> str | None:
        """"fits, but tight" (`limits.tight_headroom`, the error band included), else None."""
        est, band = self.run.estimate, self.band
        return tight_headroom(est.headroom_bytes, est.capacity_bytes, int(band[1].value) if band else 0)

    def out(self) -> TrainOut:
        """The `--json` document."""
        est, band = self.run.estimate, self.band
        shown = tuple(SuggestionOut.of(tip, cmd) for tip, cmd in self.tips)
        doc = TrainOut.of(est, shown, (self.tight,) if self.tight else (), time=self.timing, cost=self.cost)
        if band is None:
            return doc
        return doc.model_copy(update={"error_band": ErrorBandOut.of(*band, est.device_bytes)})


def results(run: TrainRun, price: float | None, command: Callable[[Suggestion], str]) -> TrainResult:
    """Suggestions (when the job does not fit; `command` writes each one's reproducing command line), the
    step time and, with a token count, the time to train and the cost."""
    tips = tuple(
        (tip, command(tip))
        for tip in suggest(run.spec, run.job, run.layout, run.cluster, baseline=run.estimate)
    )
    timing = estimate_time(run.spec, run.job, run.layout, run.cluster)
    cost = None
    if run.train_tokens is not None:
        timing, cost = estimate_run(
            timing, tokens=run.train_tokens, gpus=run.layout.num_gpus, acc=run.accelerator,
            price_usd_per_gpu_hour=price,
        )  # fmt: skip
    return TrainResult(run=run, tips=tips, timing=timing, cost=cost)


def train(
    load: Callable[[], ModelSpec], opts: TrainOptions, command: Callable[[Suggestion], str]
) -> TrainResult:
    """`llmplan train` without its printing: check the options, then load the model (`load`), estimate."""
    check(opts)
    return results(prepare(load(), opts), opts.price, command)
