"""`llmplan serve MODEL --gpu GPU`: memory per GPU, what fits and how fast, for inference / serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from llmplan.api import serve as api_serve
from llmplan.breakdown import Term, Unit
from llmplan.cli import plot as plot_cli
from llmplan.cli import serve_load as load
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.cli.options import ModelArg
from llmplan.emit import EmitError, ServeTarget
from llmplan.estimate.inference import InferenceEstimate
from llmplan.estimate.serving import plan_serving
from llmplan.limits import tight_headroom
from llmplan.loading import load_model
from llmplan.schema import ServeOut
from llmplan.specs.engines import ServingEngine
from llmplan.specs.inference import KvDtype, QuantFormat
from llmplan.specs.training import AttentionImpl

T = TypeVar("T")


def serve(
    model: ModelArg,
    gpu: Annotated[
        str, typer.Option("--gpu", help="Accelerator id or alias (llmplan gpus lists them).")
    ] = "h100",
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")] = 1,
    pp: Annotated[
        int, typer.Option("--pp", help="Pipeline stages (HF device_map splits layers this way).")
    ] = 1,
    quant: Annotated[QuantFormat, typer.Option("--quant", help="Weight format.")] = QuantFormat.BF16,
    compute_dtype: Annotated[
        QuantFormat, typer.Option("--compute-dtype", help="Activation dtype of quantized models.")
    ] = QuantFormat.BF16,
    group_size: Annotated[
        int, typer.Option("--group-size", help="GPTQ / AWQ group size (-1: per channel).")
    ] = 128,
    kv_dtype: Annotated[KvDtype, typer.Option("--kv-dtype", help="KV-cache element type.")] = KvDtype.AUTO,
    context: Annotated[int, typer.Option("--context", help="Tokens per sequence (prompt + output).")] = 4096,
    prompt: Annotated[
        int | None, typer.Option("--prompt", help="Prompt tokens (default: the context).")
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch", "--concurrency", help="Sequences decoded together (under load: requests in flight)."
        ),
    ] = None,
    engine: Annotated[
        ServingEngine,
        typer.Option(
            "--engine",
            help="hf (transformers generate), vllm, sglang or trtllm (scheduling defaults: "
            "specs/engines.py; the memory table of sglang / trtllm follows vLLM's budget rule).",
        ),
    ] = ServingEngine.HF,
    attention: Annotated[
        AttentionImpl,
        typer.Option("--attention", help="HF attention kernel: eager materialises the s x s scores."),
    ] = AttentionImpl.SDPA,
    gpu_memory_utilization: Annotated[
        float | None, typer.Option(help="Engine memory fraction (default: the engine's).")
    ] = None,
    block_size: Annotated[
        int | None, typer.Option(help="KV block size in tokens (default: the engine's).")
    ] = None,
    max_num_batched_tokens: Annotated[
        int | None, typer.Option(help="Tokens per scheduler step (default: the engine's).")
    ] = None,
    max_num_seqs: Annotated[
        int | None, typer.Option(help="Sequences per step (default: the engine's).")
    ] = None,
    chunked_prefill: Annotated[
        bool | None, typer.Option("--chunked-prefill/--no-chunked-prefill", help="Chunked prefill.")
    ] = None,
    enforce_eager: Annotated[bool, typer.Option(help="No CUDA graphs.")] = False,
    input_len: load.InputLenOption = None,
    output_len: load.OutputLenOption = None,
    request_rate: load.RateOption = None,
    num_requests: load.NumRequestsOption = 1000,
    seed: load.SeedOption = 0,
    prefix_hit_rate: load.PrefixOption = 0.0,
    spec_tokens: load.SpecTokensOption = 0,
    acceptance_rate: load.AcceptanceOption = None,
    ep: load.EpOption = 1,
    price: load.PriceOption = None,
    slo_ttft_ms: load.SloTtftOption = None,
    slo_tpot_ms: load.SloTpotOption = None,
    slo_stat: load.SloStatOption = "p90",
    target_rate: load.TargetRateOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show each formula with its numbers.")] = False,
    json_out: JsonOption = False,
    plot: plot_cli.PlotOption = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Read the engine arguments from a vLLM YAML or vllm serve line."),
    ] = None,
    emit_target: Annotated[
        ServeTarget | None,
        typer.Option("--emit", help="Write the plan's launch arguments instead (docs/emit.md)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --emit: the file to write (default: stdout).")
    ] = None,
) -> None:
    """Will MODEL serve on GPU: weights, KV cache, activations, overhead per GPU; max context x concurrency;
    time to first token, time per output token and tokens/s from a roofline. With --input-len / --output-len
    (and --concurrency or --request-rate): the engine's scheduler simulated under load — TTFT, TPOT, ITL, E2E
    percentiles, throughput, cost per million tokens, and the largest load meeting --slo-ttft-ms / --slo-tpot-ms."""

    if from_file is not None:  # the file's values replace the options they set
        given = dict(locals())
        from llmplan.cli import serve_config

        return serve(**serve_config.params(from_file, given, load.context_of))
    if emit_target is not None:
        from llmplan.cli.serve_config import ENGINE_OF

        if engine is ServingEngine.HF:
            engine = ENGINE_OF[emit_target]
        elif engine is not ENGINE_OF[emit_target]:
            raise EmitError(emit_target.value, "--engine", f"{engine.value} (allowed: {emit_target.value})")
    opts = api_serve.ServeOptions.of(locals())
    api_serve.check(opts, num_requests=num_requests, price=price)
    plot_cli.check(plot)
    spec = load_model(model)
    loaded = input_len is not None or output_len is not None or request_rate is not None
    run = api_serve.prepare(spec, opts, load.context_of(input_len, output_len) if loaded else None)
    job, cluster, overrides, context = run.job, run.cluster, run.overrides, run.job.context_len
    est = run.estimate
    if plot is not None:
        from llmplan.charts import serving_charts

        plot_cli.write(plot, serving_charts(spec, job, cluster))
    if emit_target is not None:
        from llmplan.cli import serve_config

        serve_config.write(
            emit_target, model=model, engine=engine, overrides=overrides, job=job, est=est,
            acc=cluster.accelerator, context=context, ep=ep, prefix_hit_rate=prefix_hit_rate,
            spec_tokens=spec_tokens, out=out,
        )  # fmt: skip
        return
    if loaded:
        request = load.request(
            input_len, output_len, batch, request_rate, num_requests, seed,
            prefix_hit_rate, slo_ttft_ms, slo_tpot_ms, slo_stat, target_rate,
        )  # fmt: skip
        plan = plan_serving(
            spec, job, cluster, engine, context=context, overrides=overrides,
            spec_decode=load.spec_decode(spec_tokens, acceptance_rate), ep=ep, price_usd_per_gpu_hour=price,
        )  # fmt: skip
        if not json_out:
            _print(est)
        load.run(plan, request, ServeOut.of(est).model_dump(mode="json") if json_out else None)
        return
    if json_out:
        print_json(ServeOut.of(est))
        return
    _print(est)
    if explain:
        _explain(est)


def _print(est: InferenceEstimate) -> None:
    job, mem = est.job, est.memory
    title = (
        f"{est.model} on {est.accelerator} — {job.quant.value}, kv {job.kv_dtype.value}, engine "
        f"{job.engine.value}, tp {job.tp} pp {job.pp}, {job.batch} x {job.context_len} tokens (GiB = 2^30)"
    )
    table = Table(title=title)
    table.add_column("per GPU")
    table.add_column("GiB", justify="right")
    table.add_column("bytes", justify="right")
    for term in est.terms.terms:
        for row in term.parts or (term,):
            table.add_row(row.name, gib(row.value), f"{int(row.value):,}")
    for name, value in (
        ("= allocated", mem.allocated_bytes),
        ("reserved", mem.reserved_bytes),
        ("= device (nvidia-smi)", mem.device_bytes),
        ("capacity", est.capacity_bytes),
    ):
        table.add_row(name, gib(value), f"{value:,}")
    console.print(table)
    # vLLM pre-allocates its KV pool from what is left, so only the HF engine can be tight
    tight = None if est.vllm else tight_headroom(est.headroom_bytes, est.capacity_bytes)
    verdict = ("FITS, but tight" if tight else "FITS") if est.fits else "DOES NOT FIT"
    console.print(
        f"{verdict}: {'free KV-cache pool' if est.vllm else 'headroom'} {gib(est.headroom_bytes)} GiB; "
        f"largest batch at {job.context_len} tokens: "
        f"{est.max_batch_at_context}; largest context at batch {job.batch}: {est.max_context_at_batch}"
    )
    if est.vllm:
        v = est.vllm
        console.print(
            f"vLLM: {gib(v.requested_bytes)} GiB requested − {gib(v.profile_peak_bytes)} profile peak − "
            f"{gib(v.non_torch_bytes)} non-torch = {gib(v.available_kv_bytes)} GiB for KV → "
            f"{v.num_gpu_blocks:,} blocks of {job.vllm.block_size} tokens; max concurrency at "
            f"{job.context_len} tokens: {v.max_concurrency}"
        )
    s = est.speed
    crit = f"{s.critical_batch:,.0f}" if s.critical_batch else "never (KV traffic grows with it)"
    console.print(
        f"speed (roofline): TTFT {s.ttft_s * 1e3:,.1f} ms ({s.prefill.bound}-bound), TPOT "
        f"{s.tpot_s * 1e3:,.2f} ms ({s.decode.bound}-bound), {s.tokens_per_s:,.1f} tokens/s for the batch "
        f"({s.tokens_per_s_per_sequence:,.1f} per sequence); decode turns compute-bound at batch {crit}"
    )
    if tight:
        console.print(f"warning: {tight}")
    for note in est.notes:
        console.print(f"note: {note}")


def _explain(est: InferenceEstimate) -> None:
    """The estimate's own records: each memory and time term with its formula, numbers and source."""
    console.print("[bold]how these numbers were computed[/bold]")
    for i, term in enumerate((*est.terms.terms, *est.speed.terms), 1):
        console.print(f"{i}. [bold]{term.name}[/bold] = {_shown(term)}")
        console.print(f"   {term.formula}")
        for part in term.parts:
            console.print(f"   - {part.name} = {_shown(part)}: {part.formula}")
        console.print(f"   source: {term.source}")


def _shown(term: Term) -> str:
    if term.unit is Unit.BYTES:
        return f"{int(term.value):,} B ({gib(term.value)} GiB)"
    return f"{term.value * 1e3:,.3f} ms"


def register(app: typer.Typer) -> None:
    app.command()(serve)
