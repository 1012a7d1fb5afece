"""`llmplan trace MODEL`: the real model run for one step on fake tensors, beside the analytic estimate."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmplan.cli import options as o
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.cli.options import ModelArg
from llmplan.errors import LlmplanError, SpecError
from llmplan.loading import load_model
from llmplan.schema import TraceOut, plain
from llmplan.specs.training import AttentionImpl, Method, Optimizer, OptimizerImpl, Precision, Recompute
from llmplan.trace.compare import Comparison, compare_inference, compare_training
from llmplan.trace.result import TraceResult

InferOption = Annotated[
    bool, typer.Option("--infer", help="Trace inference (prefill + decode) instead of a training step.")
]
PromptOption = Annotated[
    int, typer.Option("--prompt", help="Inference: prompt tokens prefilled per sequence.")
]
DecodeOption = Annotated[
    int, typer.Option("--decode-steps", help="Inference: tokens decoded after the prefill.")
]
DtypeOption = Annotated[
    str, typer.Option("--dtype", help="Inference: weights and KV dtype (bf16, fp16, fp32).")
]
GpuOption = Annotated[
    str, typer.Option("--gpu", help="Accelerator of the analytic estimate beside the trace.")
]
FullOption = Annotated[
    bool, typer.Option("--full", help="Trace every layer instead of composing two cut models (slow).")
]

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def trace(
    model: ModelArg,
    infer: InferOption = False,
    method: o.MethodOption = Method.FULL,
    precision: o.PrecisionOption = Precision.BF16_MIXED,
    optimizer: o.OptimizerOption = Optimizer.ADAMW,
    optimizer_impl: o.OptimizerImplOption = OptimizerImpl.FOREACH,
    micro_batch: o.MicroBatchOption = 1,
    seq_len: o.SeqLenOption = 2048,
    grad_accum: o.GradAccumOption = 1,
    recompute: o.RecomputeOption = Recompute.NONE,
    attention: o.AttentionOption = AttentionImpl.SDPA,
    lora_rank: o.LoraRankOption = 8,
    lora_alpha: o.LoraAlphaOption = 16,
    lora_targets: o.LoraTargetsOption = "q_proj,v_proj",
    num_virtual_tokens: o.VirtualTokensOption = 20,
    dp: o.DpOption = 1,
    tp: o.TpOption = 1,
    pp: o.PpOption = 1,
    zero: o.ZeroOption = 0,
    fsdp: o.FsdpOption = None,
    prompt: PromptOption = 2048,
    decode_steps: DecodeOption = 4,
    batch: o.BatchOption = 1,
    dtype: DtypeOption = "bf16",
    gpu: GpuOption = "h100-sxm-80gb",
    full: FullOption = False,
    json_out: JsonOption = False,
) -> None:
    """Run MODEL for one real step on fake tensors (no weights, no GPU) and record the live bytes per category,
    the peak and its phase; shown beside the analytic estimate with the difference per term."""
    o.check_options(
        micro_batch=micro_batch,
        seq_len=seq_len,
        grad_accum=grad_accum,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        num_virtual_tokens=num_virtual_tokens,
        dp=dp,
        tp=tp,
        pp=pp,
        zero=zero,
        prompt=prompt,
        decode_steps=decode_steps,
        batch=batch,
    )
    spec = load_model(model)
    from llmplan import catalog

    catalog.accelerator(gpu)  # an unknown --gpu is refused before the (slow) trace, not noted after it
    if infer:
        from llmplan.trace import inference_run, trace_inference

        if dtype not in DTYPES:
            raise SpecError("dtype", f"{dtype!r} cannot be traced (allowed: {', '.join(DTYPES)})")
        if attention not in (AttentionImpl.SDPA, AttentionImpl.EAGER):
            raise SpecError(
                "attention", f"{attention.value} is not traced for inference (allowed: sdpa, eager)"
            )
        run = inference_run(
            batch_size=batch,
            prompt_len=prompt,
            decode_steps=decode_steps,
            dtype=DTYPES[dtype],
            attention=attention.value,
        )
        result = trace_inference(spec, run, compose=not full)
        comparison = _analytic_inference(spec, gpu, batch, prompt, decode_steps, dtype)
    else:
        from llmplan.trace import trace_training

        job = o.training_job(
            method=method,
            precision=precision,
            optimizer=optimizer,
            optimizer_impl=optimizer_impl,
            micro_batch=micro_batch,
            seq_len=seq_len,
            grad_accum=grad_accum,
            recompute=recompute,
            attention=attention,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_targets=lora_targets,
            num_virtual_tokens=num_virtual_tokens,
        )
        layout = o.layout(dp=dp, tp=tp, pp=pp, zero=zero, fsdp=fsdp)
        _refuse_problems(spec, job, layout, gpu)
        result = trace_training(spec, job, layout=layout, compose=not full)
        comparison = _analytic_training(spec, job, layout, gpu)
    if isinstance(comparison, str):
        notes, comparison = (comparison,), None
    else:
        notes = ()
    if infer and comparison is not None:
        comparison = compare_inference(result, comparison)
    elif comparison is not None:
        comparison = compare_training(result, comparison)
    if json_out:
        print_json(TraceOut(trace=plain(result), analytic=plain(comparison), notes=tuple(notes)))
        return
    _print(result, comparison, notes)


def _refuse_problems(spec: object, job: object, layout: object, gpu: str) -> None:
    """Raise every problem the analytic engine finds in the job and layout (bad LoRA targets, a kernel the
    GPU lacks, a context beyond the positions) before the trace runs: the trace would fail or mislead."""
    from llmplan import catalog
    from llmplan.errors import raise_problems
    from llmplan.estimate.validation import problems
    from llmplan.specs.hardware import Cluster

    gpus = layout.num_gpus  # type: ignore[attr-defined]
    cluster = Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=gpus)
    raise_problems(problems(spec, job, layout, cluster))  # type: ignore[arg-type]


def _analytic_inference(spec: object, gpu: str, batch: int, prompt: int, steps: int, dtype: str) -> object:
    """The analytic InferenceMemory for the traced run (context = prompt + decode steps), or why there is none."""
    from llmplan import catalog
    from llmplan.estimate.inference import estimate_inference
    from llmplan.specs.hardware import Cluster
    from llmplan.specs.inference import InferenceJob, QuantFormat

    job = InferenceJob(
        quant=QuantFormat(dtype),
        compute_dtype=QuantFormat(dtype),
        context_len=prompt + steps,
        prompt_len=prompt,
        batch=batch,
    )
    try:
        return estimate_inference(
            spec, job, Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=1)
        ).memory
    except LlmplanError as exc:
        return f"analytic estimate unavailable: {exc}"


def _analytic_training(spec: object, job: object, layout: object, gpu: str) -> Comparison | str:
    """The analytic training estimate for the same job, or why there is none."""
    from llmplan import catalog
    from llmplan.specs.hardware import Cluster

    try:
        from llmplan.estimate.training import estimate_training

        gpus = layout.num_gpus  # type: ignore[attr-defined]
        cluster = Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=gpus)
        return estimate_training(spec, job, layout, cluster)  # type: ignore[return-value]
    except ImportError as exc:
        return f"the analytic training estimate is not available in this build ({exc})"
    except LlmplanError as exc:
        return f"analytic estimate unavailable: {exc}"


def _print(result: TraceResult, comparison: object, notes: tuple[str, ...]) -> None:
    how = (
        f"composed from {result.traced_layers[0]}- and {result.traced_layers[1]}-layer traces"
        if result.composed
        else f"{result.traced_layers[0]} layers traced"
    )
    ranks = f", rank 0 of {result.ranks} (FSDP full shard)" if result.ranks > 1 else ""
    title = f"{result.model} — traced {result.mode} step, allocated per GPU{ranks} (GiB = 2^30)"
    table = Table(title=title)
    table.add_column("at the peak")
    table.add_column("trace GiB", justify="right")
    table.add_column("trace bytes", justify="right")
    for term in result.peak.terms:
        table.add_row(term.name, gib(term.value), f"{int(term.value):,}")
    table.add_row("= peak allocated", gib(result.total), f"{result.total:,}")
    console.print(table)
    console.print(
        f"peak in {result.peak_phase} of step {result.peak_step}; {result.trainable_params:,} of "
        f"{result.total_params:,} parameters trainable; {how} in {result.wall_s:.1f} s"
    )
    timeline = Table(title="timeline (GiB)")
    for col in ("phase", "step", "peak", "end"):
        timeline.add_column(col, justify="right" if col != "phase" else "left")
    for p in result.timeline:
        timeline.add_row(p.phase, str(p.step), gib(p.peak_bytes), gib(p.end_bytes))
    console.print(timeline)
    if isinstance(comparison, Comparison):
        _print_comparison(comparison)
    for note in notes + result.notes:
        console.print(f"note: {note}")


def _print_comparison(c: Comparison) -> None:
    phases = f", peak: trace {c.trace_phase} / analytic {c.analytic_phase}" if c.analytic_phase else ""
    table = Table(title=f"trace vs analytic (allocated, GiB{phases})")
    for col in ("term", "trace", "analytic", "analytic - trace", "error"):
        table.add_column(col, justify="left" if col == "term" else "right")
    for t in (*c.terms, c.total):
        err = "n/a" if t.rel_error is None else f"{100 * t.rel_error:+.1f}%"
        table.add_row(t.term, gib(t.trace_bytes), gib(t.analytic_bytes), gib(t.diff_bytes), err)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(trace)
