"""Checks that a training job can run on a layout and a cluster: every broken rule as a `Problem` record.

`problems(model, job, layout, cluster)` returns all of them at once, without raising (a layout search prunes
with it); `validate_training` raises one InvalidInputError carrying them all (the CLI prints one line each).

Conventions chosen here:
- kv heads and tp: tp must divide the attention heads; for kv heads either tp divides them or, when tp is
  larger, they divide tp and each kv head is replicated tp / kv_heads times (Megatron-Core and vLLM replicate
  kv heads this way; `formulas.parallel.tensor.shard_linear` counts the replicas).
- dp · tp · pp · cp must equal the cluster's GPUs; ep must divide the routed experts and dp · cp · tp (expert
  parallel ranks are taken from those groups, Megatron-Core `initialize_model_parallel`).
- Optimizer offload runs DeepSpeed's CPU Adam (ZeRO-Offload), so it needs ZeRO >= 1 and an optimizer that CPU
  Adam / Adagrad / Lion implement, not a bitsandbytes one; FSDP offloads parameters, gradients and the step
  together (`CPUOffload(offload_params=True)`), never the optimizer alone, and never to NVMe.
- NVMe offload is ZeRO-Infinity: DeepSpeed offers it with ZeRO stage 3 only (DeepSpeed config-json docs,
  `offload_optimizer` / `offload_param`: "NVMe offloading is available only with ZeRO stage 3").
- flash-attn 2 kernels need an NVIDIA GPU of compute capability >= 8.0 (Ampere or newer) or an AMD MI200 /
  MI300 (flash-attention README, "Installation and features"); elsewhere only sdpa and eager run.
- The context must fit the model's positions unless its rope scaling extends them dynamically (as serving).
- QLoRA computes in 16 or 32 bits with an NF4 base: fp8 GEMMs cannot read NF4 weights.
- The optimizer step in backward cannot accumulate gradients (each is freed after its update).
"""

from __future__ import annotations

from llmplan.errors import LlmplanError, Problem, SpecError, raise_problems
from llmplan.formulas.model_states import memo_by_model, trainable_split
from llmplan.formulas.parallel.tensor import HEAD_ROLES
from llmplan.specs.hardware import Accelerator, Cluster
from llmplan.specs.model import ModelSpec, TpSplit
from llmplan.specs.training import (
    AttentionImpl,
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    Precision,
    TrainingJob,
)

_BNB = (Optimizer.ADAM8BIT, Optimizer.PAGED_ADAMW, Optimizer.PAGED_ADAMW_8BIT)
_BF16 = (Precision.BF16, Precision.BF16_MIXED, Precision.AMP_BF16)
ROPE_EXTENDABLE = frozenset({"dynamic"})
"""rope_scaling types that extend the positions at run time (dynamic NTK), so a longer context is allowed."""
FLASH_MIN_CAPABILITY = 8.0
FLASH_AMD_ARCHITECTURES = ("CDNA 2", "CDNA 3")


def layout_problems(model: ModelSpec, layout: Layout, cluster: Cluster) -> tuple[Problem, ...]:
    """Every rule `layout` breaks for `model` on `cluster` (empty when it can run)."""
    out: list[Problem] = []
    gpus = cluster.num_gpus
    if layout.num_gpus != gpus:
        out.append(
            Problem.of(
                "layout",
                f"dp·tp·pp·cp = {layout.dp}·{layout.tp}·{layout.pp}·{layout.cp} = {layout.num_gpus}",
                f"dp·tp·pp·cp = {gpus}",
                f"but the cluster has {gpus} GPUs (they must be equal)",
            )
        )
    heads, kv, tp = model.num_attention_heads, model.num_key_value_heads, layout.tp
    if heads % tp:
        out.append(
            Problem.of(
                "tp",
                tp,
                f"divisors of {heads}",
                f"does not divide the {heads} attention heads of {model.name}",
            )
        )
    elif kv % tp and tp % kv:
        out.append(
            Problem.of(
                "tp",
                tp,
                f"divisors of {kv} or multiples of it",
                f"and the {kv} kv heads of {model.name}: tp must divide them, or they divide tp (then each is "
                "replicated)",
            )
        )
    elif tp > 1:
        for name, split, dim in memo_by_model(_split_widths, model):
            if dim % tp:
                out.append(
                    Problem.of(
                        "tp", tp, f"divisors of {dim}", f"does not divide {name}'s {split}-split width {dim}"
                    )
                )
                break
    if layout.pp > model.num_hidden_layers:
        layers = model.num_hidden_layers
        out.append(
            Problem.of(
                "pp", layout.pp, f"1 to {layers}", f"stages exceed the {layers} layers of {model.name}"
            )
        )
    if layout.ep > 1:
        if model.moe is None:
            out.append(Problem.of("ep", layout.ep, "ep = 1", f"is > 1 but {model.name} has no experts"))
        else:
            experts = model.moe.num_experts
            if experts % layout.ep:
                out.append(
                    Problem.of(
                        "ep", layout.ep, f"divisors of {experts}", f"does not divide the {experts} experts"
                    )
                )
            group = layout.dp * layout.cp * layout.tp
            if group % layout.ep:
                out.append(
                    Problem.of(
                        "ep",
                        layout.ep,
                        f"divisors of dp·cp·tp = {group}",
                        f"does not divide dp·cp·tp = {group} (experts live on those ranks)",
                    )
                )
    out.extend(_offload_problems(layout))
    return tuple(out)


def _offload_problems(layout: Layout) -> list[Problem]:
    out: list[Problem] = []
    targets = {layout.offload_optimizer, layout.offload_params} - {OffloadTarget.NONE}
    if layout.fsdp is not None and layout.offload_optimizer is not OffloadTarget.NONE:
        out.append(
            Problem.of(
                "offload",
                "optimizer" if layout.offload_params is OffloadTarget.NONE else "both",
                "--offload params with --fsdp (it already moves the optimizer step), or --zero 1-3 for "
                "DeepSpeed's optimizer offload",
                "cannot be done by FSDP: its CPUOffload moves parameters, gradients and the optimizer step "
                "together, never the optimizer alone",
            )
        )
    elif layout.offload_optimizer is not OffloadTarget.NONE and layout.sharding_stage < 1:
        out.append(
            Problem.of(
                "offload",
                "optimizer",
                "--zero 1, 2 or 3",
                "needs ZeRO stage >= 1 (ZeRO-Offload shards first)",
            )
        )
    if OffloadTarget.NVME in targets:
        if layout.fsdp is not None:
            out.append(
                Problem.of(
                    "offload_target",
                    "nvme",
                    "--offload-target cpu with --fsdp, or --zero 3",
                    "is not offered by FSDP",
                )
            )
        elif layout.sharding_stage < 3:
            out.append(
                Problem.of(
                    "offload_target",
                    "nvme",
                    "--zero 3 for NVMe, or --offload-target cpu",
                    f"(ZeRO-Infinity) needs ZeRO stage 3; the layout has stage {layout.sharding_stage}",
                )
            )
    if layout.fsdp is FsdpStrategy.NO_SHARD and layout.offload_params is not OffloadTarget.NONE:
        out.append(
            Problem.of("offload", "params", "--fsdp full-shard or --zero 3", "needs sharded parameters")
        )
    return out


def _split_widths(model: ModelSpec) -> tuple[tuple[str, str, int], ...]:
    """(name, split, width) of every distinct tp-split linear but k/v (whose heads may be replicated)."""
    out: dict[tuple[str, str, int], None] = {}
    for block in model.block_kinds:
        for lin in block.linears:
            if lin.role in HEAD_ROLES or lin.tp is TpSplit.REPLICATED:
                continue
            dim = lin.out_features if lin.tp is TpSplit.COLUMN else lin.in_features
            out[(lin.name, lin.tp.value, dim)] = None
    return tuple(out)


def context_problem(model: ModelSpec, field: str, tokens: int) -> tuple[Problem | None, str | None]:
    """(problem, note) of `tokens` of context against the model's max positions, for training and serving."""
    limit = model.max_position_embeddings
    if tokens <= limit:
        return None, None
    scaling = model.rope_scaling or {}
    kind = str(scaling.get("rope_type", scaling.get("type", "")))
    if kind in ROPE_EXTENDABLE:
        note = (
            f"{field} {tokens} > max_position_embeddings {limit}: allowed by dynamic NTK rope scaling, quality "
            "beyond the trained length is not guaranteed"
        )
        return None, note
    shown = ", ".join(
        f"{key} {scaling[key]}" for key in ("original_max_position_embeddings", "factor") if key in scaling
    )
    how = (
        f"its rope_scaling ({kind}{', ' + shown if shown else ''}) already extends to {limit}"
        if scaling
        else "it has no rope_scaling; a config with rope_scaling (e.g. yarn or dynamic) could extend it"
    )
    reason = f"exceeds {model.name}'s max_position_embeddings {limit} ({how})"
    return Problem.of(field, tokens, f"<= {limit}", reason), None


def attention_problem(attention: AttentionImpl, acc: Accelerator) -> Problem | None:
    """flash-attn 2 on a GPU it has no kernels for (see the module docstring)."""
    if attention is not AttentionImpl.FLASH or supports_flash(acc):
        return None
    has = f"compute capability {acc.compute_capability}" if acc.compute_capability else acc.architecture
    return Problem.of(
        "attention",
        attention,
        "sdpa or eager here",
        f"needs the flash-attn 2 kernels: NVIDIA compute capability >= 8.0 or AMD MI200 / MI300; {acc.name} "
        f"has {has}",
    )


def supports_flash(acc: Accelerator) -> bool:
    if acc.vendor == "nvidia":
        return acc.compute_capability is not None and float(acc.compute_capability) >= FLASH_MIN_CAPABILITY
    return acc.vendor == "amd" and acc.architecture in FLASH_AMD_ARCHITECTURES


def job_problems(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> tuple[Problem, ...]:
    """Every rule the method, optimizer, precision, context or kernel of `job` breaks on `cluster`."""
    acc = cluster.accelerator
    out: list[Problem] = []
    if job.precision is Precision.FP8_MIXED and not acc.supports("fp8"):
        out.append(
            Problem.of(
                "precision", job.precision, "bf16-mixed", f"needs fp8 tensor cores; {acc.name} has none"
            )
        )
    if job.precision in _BF16 and not acc.supports("bf16"):
        out.append(
            Problem.of(
                "precision", job.precision, "fp16-mixed, fp32", f"needs bf16 support; {acc.name} has none"
            )
        )
    if job.method is Method.QLORA and job.precision is Precision.FP8_MIXED:
        out.append(
            Problem.of(
                "precision",
                job.precision,
                "bf16-mixed",
                "cannot be used by qlora: fp8 GEMMs cannot read its NF4 base",
            )
        )
    if job.optimizer_impl is OptimizerImpl.IN_BACKWARD and job.grad_accum_steps > 1:
        out.append(
            Problem.of(
                "grad_accum",
                job.grad_accum_steps,
                "grad_accum 1 with in-backward, or foreach / fused / for-loop",
                "cannot accumulate: the in-backward step frees each gradient right after its update",
            )
        )
    if layout.offload_optimizer is not OffloadTarget.NONE and job.optimizer in _BNB:
        out.append(
            Problem.of(
                "optimizer",
                job.optimizer,
                "adamw, sgd, sgd-momentum, lion, adafactor with offload",
                "is a bitsandbytes CUDA optimizer; an offloaded step runs DeepSpeed's CPU Adam",
            )
        )
    if job.seq_len % layout.cp:
        out.append(
            Problem.of(
                "seq_len",
                job.seq_len,
                f"multiples of cp {layout.cp}",
                "is not divisible by cp (it splits it)",
            )
        )
    context, _ = context_problem(model, "seq_len", job.seq_len)
    if context is not None:
        out.append(context)
    kernel = attention_problem(job.attention, acc)
    if kernel is not None:
        out.append(kernel)
    if job.method is Method.FREEZE and job.peft.freeze_layers > model.num_hidden_layers:
        layers = model.num_hidden_layers
        out.append(
            Problem.of(
                "freeze_layers", job.peft.freeze_layers, f"0 to {layers}", f"exceeds the {layers} layers"
            )
        )
    out.extend(_method_problems(model, job))
    return tuple(out)


def _method_problems(model: ModelSpec, job: TrainingJob) -> list[Problem]:
    """What `formulas.peft.trainable_params` refuses (a LoRA target the model lacks, a method it cannot take);
    through `trainable_split`, which remembers the count per model, method and PEFT settings."""
    try:
        trainable_split(model, job)
    except SpecError as exc:
        return [Problem(field=exc.field, value="", allowed="", message=str(exc).split(": ", 1)[-1])]
    except LlmplanError as exc:
        return [Problem(field="method", value=job.method.value, allowed="", message=str(exc))]
    return []


def problems(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> tuple[Problem, ...]:
    """Every problem of the job and layout on the cluster, as records; empty when the job can run."""
    return layout_problems(model, layout, cluster) + job_problems(model, job, layout, cluster)


def validate_layout(model: ModelSpec, layout: Layout, cluster: Cluster) -> None:
    """Raise InvalidInputError (a LayoutError) carrying every problem of `layout`."""
    raise_problems(layout_problems(model, layout, cluster))


def validate_job(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> None:
    """Raise InvalidInputError (a SpecError) carrying every problem of `job`."""
    raise_problems(job_problems(model, job, layout, cluster))


def validate_training(model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster) -> None:
    """Raise one InvalidInputError carrying every problem of the job and the layout on the cluster."""
    raise_problems(problems(model, job, layout, cluster))
