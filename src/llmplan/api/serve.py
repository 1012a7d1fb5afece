"""`llmplan serve` as a function: option values -> the InferenceJob, its cluster and the inference estimate
(memory per GPU, what fits, roofline speed), and the `--json` document (`schema.ServeOut`). The CLI
(`cli/serve.py`, which adds the scheduler simulation under load) and the web API both call it.

`ServeOptions` holds the options of the estimate under the CLI's parameter names; their defaults are the
CLI's (`cli/serve.py` declares them once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar

from llmplan import catalog
from llmplan.api.options import check_options
from llmplan.errors import SpecError
from llmplan.estimate.inference import InferenceEstimate, estimate_inference
from llmplan.estimate.serving import EngineOverrides
from llmplan.schema import ServeOut
from llmplan.specs.engines import ServingEngine, Setting, engine_defaults
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat, VllmSettings
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import AttentionImpl

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeOptions:
    """The options of `llmplan serve` that shape the inference estimate (names of `cli.serve.serve`'s)."""

    gpu: str
    tp: int
    pp: int
    quant: QuantFormat
    compute_dtype: QuantFormat
    group_size: int
    kv_dtype: KvDtype
    context: int
    prompt: int | None
    batch: int | None
    engine: ServingEngine
    attention: AttentionImpl
    gpu_memory_utilization: float | None
    block_size: int | None
    max_num_batched_tokens: int | None
    max_num_seqs: int | None
    chunked_prefill: bool | None
    enforce_eager: bool
    ep: int

    @classmethod
    def of(cls, values: dict[str, object]) -> ServeOptions:
        """The options among `values` (a command's parameters; other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeRun:
    """A validated inference job, its cluster, the engine's overrides and the estimate."""

    spec: ModelSpec
    job: InferenceJob
    cluster: Cluster
    overrides: EngineOverrides
    estimate: InferenceEstimate

    def out(self) -> ServeOut:
        """The `--json` document of the estimate (without a load)."""
        return ServeOut.of(self.estimate)


def check(opts: ServeOptions, **more: object) -> None:
    """Every numeric option (and those of `more`, such as the load's) inside its bound (InvalidInputError
    listing all that are not)."""
    check_options(
        tp=opts.tp, pp=opts.pp, group_size=opts.group_size, context=opts.context, prompt=opts.prompt,
        batch=opts.batch, gpu_memory_utilization=opts.gpu_memory_utilization, block_size=opts.block_size,
        max_num_batched_tokens=opts.max_num_batched_tokens, max_num_seqs=opts.max_num_seqs, ep=opts.ep,
        **more,
    )  # fmt: skip
    if opts.prompt is not None and opts.prompt > opts.context:
        raise SpecError(
            "--prompt", f"{opts.prompt} exceeds --context {opts.context} (allowed: 1 to {opts.context})"
        )


def _pick(value: T | None, setting: Setting) -> T:
    """The user's value, else the engine's default."""
    return value if value is not None else setting.value  # type: ignore[return-value]


def prepare(spec: ModelSpec, opts: ServeOptions, context: int | None = None) -> ServeRun:
    """The job of the (checked) options at `context` tokens (default: --context; a load sets its own) and its
    estimate."""
    if opts.ep > 1 and spec.moe is None:
        raise SpecError("--ep", f"{opts.ep} > 1 but {spec.name} has no experts (allowed: --ep 1)")
    acc = catalog.accelerator(opts.gpu)
    engine = opts.engine
    defaults = engine_defaults(engine if engine is not ServingEngine.HF else ServingEngine.VLLM, acc, opts.tp)
    overrides = EngineOverrides(
        max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=opts.max_num_batched_tokens,
        chunked_prefill=opts.chunked_prefill,
        block_size=opts.block_size,
        memory_fraction=opts.gpu_memory_utilization,
        cuda_graphs=False if opts.enforce_eager else None,
    )
    job = InferenceJob(
        quant=opts.quant,
        compute_dtype=opts.compute_dtype,
        kv_dtype=opts.kv_dtype,
        context_len=opts.context if context is None else context,
        prompt_len=opts.prompt,
        batch=opts.batch if opts.batch is not None else 1,
        engine=Engine.HF if engine is ServingEngine.HF else Engine.VLLM,
        attention=opts.attention,
        group_size=opts.group_size,
        tp=opts.tp,
        pp=opts.pp,
        vllm=VllmSettings(
            gpu_memory_utilization=_pick(opts.gpu_memory_utilization, defaults.memory_fraction),
            block_size=_pick(opts.block_size, defaults.block_size),
            max_num_batched_tokens=_pick(opts.max_num_batched_tokens, defaults.max_num_batched_tokens),
            max_num_seqs=_pick(opts.max_num_seqs, defaults.max_num_seqs),
            enable_chunked_prefill=_pick(opts.chunked_prefill, defaults.chunked_prefill),
            cuda_graphs=not opts.enforce_eager,
        ),
    )
    cluster = Cluster(accelerator=acc, gpus_per_node=max(8, opts.tp * opts.pp))
    return ServeRun(
        spec=spec, job=job, cluster=cluster, overrides=overrides, estimate=estimate_inference(spec, job, cluster)
    )


def serve(load: Callable[[], ModelSpec], opts: ServeOptions) -> ServeRun:
    """`llmplan serve` (without a load) without its printing: check, load the model (`load`), estimate."""
    check(opts)
    return prepare(load(), opts)
