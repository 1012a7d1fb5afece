"""The options every front end shares (the CLI's subcommands and the web API): their bounds, and the functions
that turn option values into a TrainingJob, a Layout and a Cluster. Pure: no typer, no printing; every bad value
raises an LlmplanError naming the option, its value and what is allowed."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum

from llmplan import catalog, limits
from llmplan.errors import Problem, SpecError, raise_problems
from llmplan.estimate.cost import check_tokens
from llmplan.specs.hardware import Accelerator, Cluster
from llmplan.specs.training import (
    AdapterDtype,
    AttentionImpl,
    FsdpStrategy,
    Layout,
    Method,
    OffloadTarget,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    PipelineSchedule,
    Precision,
    Recompute,
    TrainingJob,
    ZeroStage,
)


class OffloadWhat(str, Enum):
    """What `--offload` moves off the GPU."""

    OPTIMIZER = "optimizer"
    PARAMS = "params"
    BOTH = "both"


OPTION_BOUNDS: dict[str, limits.Bound] = {
    "micro_batch": limits.MICRO_BATCH,
    "seq_len": limits.SEQ_LEN,
    "grad_accum": limits.GRAD_ACCUM,
    "lora_rank": limits.LORA_RANK,
    "lora_alpha": limits.LORA_ALPHA,
    "num_virtual_tokens": limits.VIRTUAL_TOKENS,
    "lora_dropout": limits.LORA_DROPOUT,
    "gpus": limits.GPUS,
    "gpus_per_node": limits.GPUS_PER_NODE,
    "dp": limits.DEGREE,
    "tp": limits.DEGREE,
    "pp": limits.DEGREE,
    "cp": limits.DEGREE,
    "ep": limits.DEGREE,
    "context": limits.POSITIONS,
    "prompt": limits.POSITIONS,
    "batch": limits.BATCH,
    "decode_steps": limits.DECODE_STEPS,
    "gpu_memory_utilization": limits.GPU_MEMORY_UTILIZATION,
    "max_num_batched_tokens": limits.BATCHED_TOKENS,
    "max_num_seqs": limits.MAX_NUM_SEQS,
    "absmax": limits.ABSMAX,
    "value": limits.FORMAT_VALUE,
    "min_b": limits.BILLIONS,
    "num_requests": limits.NUM_REQUESTS,
    "price": limits.PRICE,
    "nodes": limits.GPUS,
    "virtual_stages": limits.VIRTUAL_STAGES,
    "max_b": limits.BILLIONS,
}
"""The bound of each numeric option, by its parameter name (`docs/limits.md` lists them with the reasons)."""


def option_name(name: str) -> str:
    """`micro_batch` -> `--micro-batch`; a positional argument keeps its name."""
    return name.upper() if name == "value" else "--" + name.replace("_", "-")


def option_problems(**values: object) -> list[Problem]:
    """Every option of `values` (parameter name -> value; None = not given) outside its bound, plus the
    choices: `zero` (ZeRO stages), `block_size` (vLLM block sizes), `group_size` (-1 or a bound)."""
    out: list[Problem] = []
    for name, value in values.items():
        if value is None:
            continue
        field = option_name(name)
        if name == "zero":
            found = limits.choice_problem(field, value, limits.ZERO_STAGES, "is not a ZeRO stage")
        elif name == "block_size":
            found = limits.choice_problem(field, value, limits.VLLM_BLOCK_SIZES, "is not a vLLM block size")
        elif name == "group_size":
            found = None if value == -1 else limits.GROUP_SIZE.problem(field, value)
            if found is not None:
                found = Problem.of(field, value, f"-1 or {limits.GROUP_SIZE.allowed}", "is out of range")
        else:
            found = OPTION_BOUNDS[name].problem(field, value)
        if found is not None:
            out.append(found)
    return out


def check_options(**values: object) -> None:
    """Raise InvalidInputError with every option outside its bound (see `option_problems`)."""
    raise_problems(option_problems(**values))


def lora_target_names(lora_targets: str) -> tuple[str, ...]:
    """`--lora-targets q_proj, v_proj` -> ("q_proj", "v_proj"); SpecError for names that cannot be modules."""
    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    for target in targets:
        if not target.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise SpecError(
                "--lora-targets",
                f"{target!r} is not a module name (allowed: names such as q_proj, v_proj, or all-linear)",
            )
    return targets


def training_job(
    *,
    method: Method,
    precision: Precision,
    optimizer: Optimizer,
    optimizer_impl: OptimizerImpl,
    micro_batch: int,
    seq_len: int,
    grad_accum: int,
    recompute: Recompute,
    attention: AttentionImpl,
    lora_rank: int,
    lora_alpha: float,
    lora_targets: str,
    num_virtual_tokens: int,
    packing: bool = False,
    chunked_ce: bool = False,
    lora_dropout: float = 0.0,
    adapter_dtype: AdapterDtype | None = None,
    activation_offload: bool = False,
) -> TrainingJob:
    """The TrainingJob the options describe."""
    targets = lora_target_names(lora_targets)
    peft = PeftSpec(
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_targets=targets,
        lora_dropout=lora_dropout,
        adapter_dtype=adapter_dtype,
        num_virtual_tokens=num_virtual_tokens,
    )
    return TrainingJob(
        method=method,
        precision=precision,
        optimizer=optimizer,
        optimizer_impl=optimizer_impl,
        micro_batch_size=micro_batch,
        seq_len=seq_len,
        grad_accum_steps=grad_accum,
        recompute=recompute,
        attention=attention,
        packing=packing,
        chunked_ce=chunked_ce,
        activation_offload=activation_offload,
        peft=peft,
    )


def zero_stage(zero: int) -> ZeroStage:
    """The ZeroStage of `--zero`; SpecError for a number that is not a stage."""
    try:
        return ZeroStage(zero)
    except ValueError:
        raise SpecError("zero", f"{zero} is not a ZeRO stage (allowed: 0, 1, 2, 3)") from None


def layout(*, dp: int, tp: int, pp: int, zero: int, fsdp: FsdpStrategy | None) -> Layout:
    """The Layout the options describe."""
    return Layout(dp=dp, tp=tp, pp=pp, zero=zero_stage(zero), fsdp=fsdp)


_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_TOKENS = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([kmbgtp]?)\s*$", re.IGNORECASE)


def parse_tokens(text: str, field: str = "tokens") -> float:
    """'1T' → 1e12, '300B' → 3e11, '2.5e9' → 2.5e9; SpecError for anything else or out of range."""
    match = _TOKENS.match(text)
    if match is None:
        raise SpecError(
            field, f"{text!r} is not a token count (allowed: a number with k, M, B or T, e.g. 1T)"
        )
    return check_tokens(float(match.group(1)) * _SUFFIX[match.group(2).lower()], field)


def run_tokens(tokens: str | None, epochs: float | None, dataset_tokens: str | None) -> float | None:
    """The tokens to train on from --tokens, or --epochs × --dataset-tokens; None when neither is given."""
    if tokens is not None and (epochs is not None or dataset_tokens is not None):
        raise SpecError("tokens", "give --tokens or --epochs with --dataset-tokens, not both")
    if tokens is not None:
        return parse_tokens(tokens)
    if epochs is None and dataset_tokens is None:
        return None
    if epochs is None or dataset_tokens is None:
        raise SpecError(
            "epochs", "missing half: --epochs and --dataset-tokens go together (allowed: both, or --tokens)"
        )
    if not 0 < epochs <= 1000:
        raise SpecError("epochs", f"{epochs!r} (allowed: 0 < epochs <= 1000)")
    return check_tokens(epochs * parse_tokens(dataset_tokens, "dataset_tokens"))


DEFAULT_NETWORK_PRESET = "dgx-h100"
"""Without --cluster, a multi-node job takes the network of the first cluster preset of the same accelerator,
else this preset's (8 × 400 Gb/s NDR InfiniBand per node, one NIC per GPU)."""


def total_gpus(gpus: int, nodes: int | None, gpus_per_node: int) -> int:
    """--gpus, or --nodes × --gpus-per-node; SpecError when both are given and disagree."""
    if nodes is None:
        return gpus
    if nodes < 1:
        raise SpecError("nodes", f"{nodes} is out of range (allowed: integers >= 1)")
    if gpus_per_node < 1:
        raise SpecError("gpus_per_node", f"{gpus_per_node} is out of range (allowed: integers >= 1)")
    if gpus not in (1, nodes * gpus_per_node):
        raise SpecError(
            "gpus",
            f"{gpus} GPUs disagree with --nodes {nodes} × --gpus-per-node {gpus_per_node} "
            f"(allowed: --gpus {nodes * gpus_per_node}, or leave --gpus out)",
        )
    return nodes * gpus_per_node


def with_schedule(layout: Layout, schedule: PipelineSchedule, virtual: int) -> Layout:
    """The layout with its pipeline schedule and virtual stages."""
    return dataclasses.replace(layout, pp_schedule=schedule, pp_virtual_stages=virtual)


def cluster_network(cluster: Cluster) -> tuple[Cluster, str]:
    """A multi-node cluster without a network gets the network of a preset (DEFAULT_NETWORK_PRESET); returns
    the cluster and a note saying what was assumed ("" when nothing was)."""
    if cluster.nodes == 1 or cluster.inter_node is not None:
        return cluster, ""
    same = [c for c in catalog.clusters() if c.accelerator.id == cluster.accelerator.id and c.inter_node]
    preset = same[0] if same else catalog.cluster(DEFAULT_NETWORK_PRESET)
    assert preset.inter_node is not None  # a preset with a network
    note = f"network between nodes not given (--cluster): assumed {preset.inter_node.name}"
    return dataclasses.replace(cluster, inter_node=preset.inter_node), note


def preset_cluster(preset_id: str, gpus: int, nodes: int | None) -> Cluster:
    """The preset scaled to --nodes (or to --gpus: whole nodes, or part of one node)."""
    preset = catalog.cluster(preset_id)
    per_node = preset.gpus_per_node
    if nodes is not None:
        if gpus not in (1, nodes * per_node):
            raise SpecError(
                "gpus",
                f"{gpus} GPUs disagree with --nodes {nodes} of {preset_id} ({per_node} per node) "
                f"(allowed: --gpus {nodes * per_node}, or leave --gpus out)",
            )
        return catalog.cluster(preset_id, nodes=nodes)
    if gpus <= per_node:
        return dataclasses.replace(preset, gpus_per_node=gpus)
    if gpus % per_node:
        raise SpecError(
            "gpus", f"{gpus} GPUs do not fill nodes of {preset_id} ({per_node} per node; allowed: multiples)"
        )
    return catalog.cluster(preset_id, nodes=gpus // per_node)


def training_layout(
    gpus, dp, tp, pp, cp, ep, sequence_parallel, zero, fsdp, offload, target, stack
) -> Layout:
    """The Layout of `llmplan train`'s options; dp defaults to gpus / (tp·pp·cp)."""
    stage = zero_stage(zero)
    if dp is None:
        model_parallel = tp * pp * cp
        if gpus % model_parallel:
            raise SpecError(
                "--gpus",
                f"{gpus} is not divisible by tp·pp·cp = {tp}·{pp}·{cp} = {model_parallel} "
                f"(allowed: multiples of {model_parallel}, or set --dp so that dp·tp·pp·cp = --gpus)",
            )
        dp = gpus // model_parallel
    opt = target if offload in (OffloadWhat.OPTIMIZER, OffloadWhat.BOTH) else OffloadTarget.NONE
    par = target if offload in (OffloadWhat.PARAMS, OffloadWhat.BOTH) else OffloadTarget.NONE
    return Layout(
        dp=dp,
        tp=tp,
        pp=pp,
        cp=cp,
        ep=ep,
        sequence_parallel=sequence_parallel,
        zero=stage,
        fsdp=fsdp,
        offload_optimizer=opt,
        offload_params=par,
        stack=stack,
    )


def node_cluster(acc: Accelerator, gpus: int, gpus_per_node: int) -> Cluster:
    """`gpus` accelerators in nodes of `gpus_per_node` (one partial node when gpus < gpus_per_node)."""
    per_node = min(gpus, gpus_per_node)
    if gpus % per_node:
        raise SpecError(
            "--gpus",
            f"{gpus} does not fill nodes of --gpus-per-node {gpus_per_node} "
            f"(allowed: up to {gpus_per_node}, or multiples of {gpus_per_node})",
        )
    return Cluster(accelerator=acc, gpus_per_node=per_node, nodes=gpus // per_node)
