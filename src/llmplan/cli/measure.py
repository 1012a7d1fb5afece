"""`llmplan measure MODEL`: the traced step run for real on a CUDA GPU with random weights."""

from __future__ import annotations

import typer
from rich.table import Table

from llmplan.cli import options as o
from llmplan.cli._common import JsonOption, console, gib, print_json
from llmplan.cli.trace import (
    DTYPES,
    DecodeOption,
    DtypeOption,
    InferOption,
    ModelArg,
    PromptOption,
)
from llmplan.errors import SpecError
from llmplan.loading import load_model
from llmplan.schema import MeasureOut, plain
from llmplan.specs.training import AttentionImpl, Method, Optimizer, OptimizerImpl, Precision, Recompute


def measure(
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
    prompt: PromptOption = 2048,
    decode_steps: DecodeOption = 4,
    batch: o.BatchOption = 1,
    dtype: DtypeOption = "bf16",
    json_out: JsonOption = False,
) -> None:
    """Run MODEL's step on this machine's CUDA GPU (random weights) and report peak allocated, reserved and
    device memory and the step time; without a CUDA GPU, say so."""
    o.check_options(
        micro_batch=micro_batch,
        seq_len=seq_len,
        grad_accum=grad_accum,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        num_virtual_tokens=num_virtual_tokens,
        prompt=prompt,
        decode_steps=decode_steps,
        batch=batch,
    )
    spec = load_model(model)
    from llmplan.trace.measure import measure as run_measure  # torch: imported once the input is valid

    if infer:
        from llmplan.trace import inference_run

        if dtype not in DTYPES:
            raise SpecError("dtype", f"{dtype!r} cannot be measured (allowed: {', '.join(DTYPES)})")
        work: object = inference_run(
            batch_size=batch, prompt_len=prompt, decode_steps=decode_steps, dtype=DTYPES[dtype]
        )
    else:
        work = o.training_job(
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
    result = run_measure(spec, work)  # type: ignore[arg-type]
    if json_out:
        print_json(MeasureOut(result=plain(result)))
        return
    table = Table(title=f"{result.model} — measured {result.mode} step on {result.device_name} (GiB = 2^30)")
    table.add_column("counter")
    table.add_column("GiB", justify="right")
    table.add_column("bytes", justify="right")
    for name, value in (
        ("allocated (max_memory_allocated)", result.peak_allocated_bytes),
        ("reserved (max_memory_reserved)", result.peak_reserved_bytes),
        ("device (mem_get_info: total - free)", result.device_used_bytes),
        ("device total", result.device_total_bytes),
    ):
        table.add_row(name, gib(value), f"{value:,}")
    console.print(table)
    console.print(f"step time: {result.step_time_s:.3f} s")
    if result.decode_time_per_token_s:
        console.print(f"decode: {1e3 * result.decode_time_per_token_s:.2f} ms per step")


def register(app: typer.Typer) -> None:
    app.command()(measure)
