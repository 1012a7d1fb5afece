"""The collectives of a layout on a cluster (`formulas.layout_comms` describes each): the stage's synchronous
ones per micro-batch (TP, CP, EP, PP) and the data-parallel ones per step, each on the `CommGroup` of its ranks.

Placement and links: `formulas.topology` (tp ranks consecutive, then cp, dp, pp; ep inside dp; rail-aligned rings
between nodes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.errors import SpecError
from llmplan.formulas import compute_time as ct
from llmplan.formulas.activations import training_activations
from llmplan.formulas.comms import Collective, CommGroup, collective_time
from llmplan.formulas.flops import Pass, StepOps
from llmplan.formulas.layout_comms import DDP_BUCKET_BYTES, CommCall, Overlap, bucketed
from llmplan.formulas.model_states import MIXED, ModelStates
from llmplan.formulas.topology import comm_group
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import Block, Group, ModelSpec, TpSplit
from llmplan.specs.training import (
    FsdpStrategy,
    Layout,
    OffloadTarget,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
)

HOST_MEMORY_BANDWIDTH_BYTES_PER_S = 200e9
"""Host DRAM bandwidth a node's CPU optimizer step reaches: two sockets of 8 DDR4-3200 channels (2 × 204.8 GB/s
nominal, DGX A100's AMD EPYC 7742) at about half of nominal in STREAM; shared by the node's GPUs."""
NVME_BYTES_PER_S = 5e9
"""One PCIe 4.0 NVMe drive per GPU (ZeRO-Infinity's layout): ~7 GB/s read, ~4 GB/s write sequential
(Samsung PM1733 datasheet); the mean of the two directions."""


def _group(cluster: Cluster, size: int, stride: int, kind: Collective) -> CommGroup:
    return comm_group(cluster, size, stride=stride, collective=kind)


@dataclass(frozen=True, slots=True)
class StageComms:
    """Per micro-batch on one stage: exposed seconds added to forward and backward, and each collective's
    (name, seconds, exposed seconds)."""

    forward_s: float
    backward_s: float
    items: tuple[tuple[str, float, float], ...]


def stage_calls(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    cluster: Cluster,
    blocks: tuple[tuple[Block, int], ...],
    first: bool,
    last: bool,
    tokens: int,
    act_bytes: int,
    attention_fwd_s: float,
) -> StageComms:
    """TP, CP, EP and PP collectives of one micro-batch on one stage (formulas.layout_comms)."""
    fwd = bwd = 0.0
    items: list[tuple[str, float, float]] = []
    h = model.hidden_size
    n_layers = sum(n for _, n in blocks)
    if layout.tp > 1:
        syncs = sum(_tp_syncs(model, block) * n for block, n in blocks)
        msg = tokens * h * act_bytes
        grp = _group(cluster, layout.tp, 1, Collective.ALL_REDUCE)
        if layout.sequence_parallel:
            one = (
                collective_time("tp", Collective.REDUCE_SCATTER, msg, grp).value
                + collective_time("tp", Collective.ALL_GATHER, msg, grp).value
            )
        else:
            one = collective_time("tp", Collective.ALL_REDUCE, msg, grp).value
        f_calls = syncs + (1 if first else 0)
        b_calls = syncs + (1 if last else 0) + (syncs if job.recompute is Recompute.FULL else 0)
        fwd += f_calls * one
        bwd += b_calls * one
        items.append(
            (
                "tp_all_reduce" if not layout.sequence_parallel else "tp_reduce_scatter_all_gather",
                (f_calls + b_calls) * one,
                (f_calls + b_calls) * one,
            )
        )
    if layout.cp > 1:
        kv = model.num_key_value_heads * model.head_dim * 2 / min(layout.tp, model.num_key_value_heads)
        msg = tokens * kv * act_bytes
        grp = _group(cluster, 2, layout.tp, Collective.P2P)
        step = collective_time("cp", Collective.P2P, msg, grp).value
        ring_f = (layout.cp - 1) * step * n_layers
        ring_b = 2 * ring_f
        exp_f = max(0.0, ring_f - attention_fwd_s)
        exp_b = max(0.0, ring_b - 2 * attention_fwd_s)
        fwd += exp_f
        bwd += exp_b
        items.append(("cp_ring_p2p", ring_f + ring_b, exp_f + exp_b))
    if layout.ep > 1 and model.moe is not None:
        moe_layers = sum(n for block, n in blocks if block.moe)
        msg = tokens * model.moe.experts_per_token * h * act_bytes
        grp = _group(cluster, layout.ep, layout.tp * layout.cp, Collective.ALL_TO_ALL)
        one = collective_time("ep", Collective.ALL_TO_ALL, msg, grp).value
        f_calls = 2 * moe_layers
        b_calls = 2 * moe_layers * (2 if job.recompute is Recompute.FULL else 1)
        fwd += f_calls * one
        bwd += b_calls * one
        items.append(("ep_all_to_all", (f_calls + b_calls) * one, (f_calls + b_calls) * one))
    if layout.pp > 1:
        msg = tokens * h * act_bytes / (layout.tp if layout.sequence_parallel else 1)
        grp = _group(cluster, 2, layout.tp * layout.cp * layout.dp, Collective.P2P)
        one = collective_time("pp", Collective.P2P, msg, grp).value
        sends = (0 if last else 1) + (0 if first else 1)
        fwd += sends * one / 2
        bwd += sends * one / 2
        items.append(("pp_p2p", sends * one, sends * one))
    return StageComms(fwd, bwd, tuple(items))


def _tp_syncs(model: ModelSpec, block: Block) -> int:
    """All-reduces per layer forward: one per block part (attention, MLP) that ends in a row-parallel linear;
    one when attention and MLP run in parallel and are summed before the reduction."""
    parts = {lin.group is Group.ATTENTION for lin in block.linears if lin.tp is TpSplit.ROW}
    return 1 if model.parallel_attention else len(parts)


def dp_calls(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster, ops: StepOps, states: ModelStates
) -> list[CommCall]:
    """Data-parallel collectives of the stage (formulas.layout_comms): gradient sync, ZeRO / FSDP gathers."""
    calls: list[CommCall] = []
    n = layout.dp * layout.cp
    trainable = sum(g.m * g.n * g.count for g in ops.gemms if g.step is Pass.WEIGHT_GRAD)
    params = sum(g.n * g.k * g.count for g in ops.gemms if g.step is Pass.FORWARD)
    if n > 1 and trainable == 0 and layout.sharding_stage < 3:
        trainable = max(0, states.trainable_on_rank)
    if n <= 1:
        return _offload_calls(model, job, layout, cluster, params)
    stage = layout.sharding_stage
    w_bytes = 4 if job.precision in (Precision.FP32, Precision.AMP_BF16) else 2
    fsdp_mixed = layout.fsdp is not None and job.precision in MIXED
    g_bytes = 4 if fsdp_mixed or job.precision in (Precision.FP32, Precision.AMP_BF16) else 2
    hybrid = layout.fsdp is FsdpStrategy.HYBRID_SHARD
    shard_n = min(n, cluster.gpus_per_node) if hybrid else n
    stride = layout.tp
    if stage == 0:
        grp = _group(cluster, n, stride, Collective.ALL_REDUCE)
        calls.append(
            bucketed(
                "dp_all_reduce",
                Collective.ALL_REDUCE,
                trainable * g_bytes,
                DDP_BUCKET_BYTES,
                grp,
                Overlap.LAST_BACKWARD,
                False,
            )
        )
        return calls + _offload_calls(model, job, layout, cluster, params)
    rs = _group(cluster, shard_n, stride, Collective.REDUCE_SCATTER)
    ag = _group(cluster, shard_n, stride, Collective.ALL_GATHER)
    layers = max(1, model.num_hidden_layers // layout.pp)
    if stage in (1, 2) and layout.fsdp is None:
        calls.append(
            bucketed(
                "zero_reduce_scatter",
                Collective.REDUCE_SCATTER,
                trainable * g_bytes,
                5e8 * g_bytes,
                rs,
                Overlap.BACKWARD if stage == 2 else Overlap.LAST_BACKWARD,
                stage == 2,
            )
        )
        # Megatron-Core's distributed optimizer gathers the updated parameters under the next forward
        # (`overlap_param_gather`); DeepSpeed gathers them after the step, on the critical path
        gather_overlap = Overlap.FORWARD if layout.stack is Stack.MEGATRON else Overlap.NONE
        calls.append(
            CommCall(
                "zero_all_gather", Collective.ALL_GATHER, trainable * w_bytes, ag, 1, gather_overlap, False
            )
        )
        return calls + _offload_calls(model, job, layout, cluster, params)
    unit = params * w_bytes / layers
    gathers = (
        CommCall(
            "fsdp_all_gather_forward",
            Collective.ALL_GATHER,
            unit,
            ag,
            layers,
            Overlap.FORWARD,
            True,
            first_unit_s=collective_time("ag", Collective.ALL_GATHER, unit, ag).value,
        ),
    )
    calls.extend(gathers)
    if stage == 3:
        calls.append(
            CommCall(
                "fsdp_all_gather_backward",
                Collective.ALL_GATHER,
                unit,
                ag,
                layers,
                Overlap.BACKWARD,
                True,
                first_unit_s=collective_time("ag", Collective.ALL_GATHER, unit, ag).value,
            )
        )
    grad_unit = trainable * g_bytes / layers
    calls.append(
        CommCall(
            "fsdp_reduce_scatter",
            Collective.REDUCE_SCATTER,
            grad_unit,
            rs,
            layers,
            Overlap.BACKWARD,
            True,
            first_unit_s=collective_time("rs", Collective.REDUCE_SCATTER, grad_unit, rs).value,
        )
    )
    if hybrid and n > shard_n:
        rep = _group(cluster, n // shard_n, stride * shard_n, Collective.ALL_REDUCE)
        calls.append(
            bucketed(
                "hsdp_all_reduce",
                Collective.ALL_REDUCE,
                trainable * g_bytes / shard_n,
                DDP_BUCKET_BYTES,
                rep,
                Overlap.LAST_BACKWARD,
                False,
            )
        )
    return calls + _offload_calls(model, job, layout, cluster, params)


def _offload_calls(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster, params: int
) -> list[CommCall]:
    """Host-link traffic: parameter offload streams the 16-bit parameters in for forward and for backward;
    activation offload copies each micro-batch's offloaded saved tensors (`ActivationBreakdown.host_bytes` of
    one micro-batch) down during forward and back up during backward, behind that pass's compute
    (torchtune `OffloadActivations` and unsloth's offloaded checkpoints use a side stream)."""
    if layout.offload_params is OffloadTarget.NONE and not job.activation_offload:
        return []
    host = cluster.accelerator.host
    if host is None:
        raise SpecError("offload", f"{cluster.accelerator.name} has no host link in the catalog")
    grp = CommGroup(size=2, intra_bytes_per_s=host.one_way_bytes_per_s)
    calls = []
    if layout.offload_params is not OffloadTarget.NONE:
        calls.append(CommCall("offload_params_h2d", Collective.P2P, params * 2, grp, 2, Overlap.FORWARD, True))
    if job.activation_offload:
        one = replace(job, grad_accum_steps=1)
        from llmplan.estimate.training import adapted_linears  # the estimate imports this module

        moved = training_activations(model, one, layout, adapted_linears(model, one)).host_bytes
        calls.append(CommCall("offload_activations_d2h", Collective.P2P, moved, grp, 1, Overlap.FORWARD, True))
        calls.append(CommCall("offload_activations_h2d", Collective.P2P, moved, grp, 1, Overlap.BACKWARD, True))
    return calls


def optimizer_step(
    job: TrainingJob, layout: Layout, cluster: Cluster, states: ModelStates, bwd_compute: float
) -> tuple[float, float, str]:
    """(optimizer_s, offload_s, formula): on the GPU the step streams master weights, states, gradients and
    16-bit weights through HBM once; offloaded (ZeRO-Offload) the 16-bit gradients go down during backward,
    the host updates at HOST_MEMORY_BANDWIDTH_BYTES_PER_S per node (NVMe swaps the states at NVME_BYTES_PER_S)
    and the 16-bit parameters come back."""
    acc = cluster.accelerator
    step_bytes = 2 * (states.master_weights_bytes + states.optimizer_states_bytes) + states.gradients_bytes
    step_bytes += states.weights_bytes if states.master_weights_bytes else 0
    if layout.offload_optimizer is OffloadTarget.NONE:
        t = ct.memory_time(step_bytes, acc)
        return (
            t,
            0.0,
            f"{step_bytes:,.0f} B / ({acc.memory_bandwidth_bytes_per_s / 1e9:.0f} GB/s × {ct.HBM_BANDWIDTH_FRACTION})",
        )
    host = acc.host.one_way_bytes_per_s if acc.host is not None else 32e9
    grads16 = states.trainable_on_rank * 2
    down = max(0.0, grads16 / host - bwd_compute)
    up = grads16 / host
    cpu_bytes = states.trainable_on_rank * (2 * 16 + 4)
    cpu = cpu_bytes / (HOST_MEMORY_BANDWIDTH_BYTES_PER_S / cluster.gpus_per_node)
    if layout.offload_optimizer is OffloadTarget.NVME:
        cpu += states.trainable_on_rank * 2 * 12 / NVME_BYTES_PER_S
    return 0.0, down + cpu + up, "offloaded: step on the host"
