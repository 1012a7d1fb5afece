"""Data parallelism with ZeRO / FSDP sharding: the group the model states are sharded over, what DeepSpeed
ZeRO-3 keeps whole, and the gather / reduce buffers of each engine (Rajbhandari et al. 2020, "ZeRO", sections
5.1-5.3; Zhao et al. 2023, "PyTorch FSDP").

ZeRO / FSDP shard over the data-parallel group only, dp · cp (ZeRO stage 1: master + states, 2: + gradients,
3: + weights), never over tp or pp; FSDP with mixed precision follows FSDP2's `MixedPrecisionPolicy`
(torch/distributed/fsdp/_fully_shard): the fp32 shards are the masters (no 16-bit shard), gradients are
reduced into fp32 shards, the 16-bit copies exist only as gathered units; routed experts over the
expert-data-parallel group (`parallel.expert`). FSDP hybrid-shard shards within a node. DeepSpeed ZeRO-3
leaves the tensors of at most `stage3_param_persistence_threshold` elements whole on every rank
(`ds_persistent_elems`); its gather and reduce buffers are in `comm_buffers`.
"""

from __future__ import annotations

from llmplan.formulas.inventory import RankInventory, memo_by_model
from llmplan.formulas.parallel.pipeline import is_last, stage_layers
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.formulas.peft import LORA_FAMILY, lora_rank, lora_target_linears
from llmplan.specs.model import Group, ModelSpec
from llmplan.specs.training import FsdpStrategy, Layout, Method, Precision, TrainingJob
from llmplan.stacks import StackSettings


def sharding_group(layout: Layout, gpus_per_node: int) -> int:
    """GPUs ZeRO / FSDP shard over: the data-parallel group dp · cp (never tp or pp; ZeRO paper section 5 and
    Megatron's distributed optimizer shard over the data-parallel ranks, which include cp ranks in
    Megatron-Core). FSDP hybrid-shard: within a node, i.e. the dp·cp ranks sharing one node."""
    group = layout.dp * layout.cp
    if layout.sharding_stage == 0:
        return 1
    if layout.fsdp is FsdpStrategy.HYBRID_SHARD:
        per_node = max(1, gpus_per_node // (layout.tp * layout.pp))
        return max(1, min(group, per_node))
    return group


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b): a shard of a sharded tensor (the last rank's may be shorter)."""
    return -(-a // b)


def ds_persistent_elems(
    model: ModelSpec, job: TrainingJob, tp: int, pp: int, stage: int, threshold: int
) -> int:
    """Elements of the parameters DeepSpeed ZeRO-3 leaves unpartitioned on every rank: each tensor of at most
    `threshold` elements (`stage3_param_persistence_threshold`, the stack's, `llmplan.stacks`) is marked `ds_persist` and kept
    whole (deepspeed/runtime/zero/parameter_offload.py `mark_persistent_parameters`): norms, biases, small
    weights (MoE routers) and the small LoRA matrices (A: r × in, B: out × r, per adapted linear). Remembered
    per model."""
    return memo_by_model(_ds_persistent, model, job.method, job.peft, tp, pp, stage, threshold)


def _ds_persistent(
    model: ModelSpec, method: Method, peft: object, tp: int, pp: int, stage: int, threshold: int
) -> int:
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    small = 0
    for i in layers:
        block = model.layers[i]
        small += sum(t.numel for t in block.tensors if t.numel <= threshold)
        for lin in block.linears:
            in_f, out_f = shard_linear(lin, model, tp)
            fused = lin.group is Group.ROUTED_EXPERTS  # one (experts, out, in) parameter in transformers v5
            weight = (lin.copies if fused else 1) * in_f * out_f
            if weight <= threshold:
                small += weight * (1 if fused else lin.copies)
            if lin.bias and out_f <= threshold:
                small += lin.copies * out_f
    if is_last(stage, pp):
        small += sum(t.numel for t in model.final if t.numel <= threshold)
    if method in LORA_FAMILY:
        for i, lin in lora_target_linears(model, peft.lora_targets, convert_moe=method is not Method.ADALORA):
            if i in layers:
                r = lora_rank(model, lin, peft.lora_rank)
                in_f, out_f = shard_linear(lin, model, tp)
                small += lin.copies * sum(n for n in (r * in_f, r * out_f) if n <= threshold)
    return small


def comm_buffers(
    job: TrainingJob,
    layout: Layout,
    inv: RankInventory,
    trainable: int,
    w: int,
    n: int,
    st: StackSettings,
) -> tuple[int, int]:
    """(gather, reduce) buffer bytes; the sizes are the stack's (`st`, `llmplan.stacks`).

    DeepSpeed ZeRO-3 (16-bit parameters), the larger of two moments:
    - a layer's backward: the layer, gathered for its recomputation and kept through its backward (reused
      within `stage3_max_reuse_distance`), plus the prefetch bucket (HF "auto": 0.9·h²) of the next modules;
    - the turn from forward to backward: the head (reused by its own backward at once) stays gathered, and so
      do the last layer's parameters that the trace reuses within `stage3_max_reuse_distance` elements after
      the head's forward and backward (2 · head elements), plus the prefetch bucket;
    never more than `stage3_max_live_parameters` beyond the current layer, nor the rank's whole model
    (deepspeed/runtime/zero/partitioned_param_coordinator.py `fetch_sub_module`, `__params_to_release`).
    Over one GPU nothing is gathered: the partition is the whole parameter (partition_parameters.py
    `all_gather_coalesced` returns `_no_gather_coalesced` when the partition world size is 1).
    FSDP full / hybrid shard, a unit per decoder layer: the root unit (embedding, final norm, head) stays
    gathered from forward to the end of backward (FSDP2 does not reshard the root after forward) plus two
    layers (current + `fsdp_prefetch_units` prefetched), never more than the rank's whole model; checked
    against `trace.fsdp` (FSDP2 on a fake process group). Units are gathered in FSDP's `param_dtype`: under
    amp-bf16 with `fsdp_gather_16bit` that is bf16, not the fp32 of the shards, because accelerate's FSDP plugin turns `mixed_precision: bf16` into
    `MixedPrecision(param_dtype=bf16, reduce_dtype=bf16, buffer_dtype=bf16)` (accelerate/utils/dataclasses.py
    `FullyShardedDataParallelPlugin.set_mixed_precision`); the unsharded gradient of a unit is then bf16 too.
    Reduce: DDP keeps a bucket copy of every gradient when `ddp_bucket_copy` (`gradient_as_bucket_view=False`,
    the default; torch DistributedDataParallel docs); DeepSpeed ZeRO-1/2 a reduce bucket of
    min(reduce_bucket_size, trainable) elements; DeepSpeed ZeRO-3 its contiguous reduce bucket of
    `reduce_bucket_size` (HF "auto": h²) elements, allocated when the
    optimizer is built (stage3.py: `torch.empty(self.reduce_bucket_size, ...)` per communication dtype); FSDP
    the unsharded gradient of one unit before its reduce-scatter.
    """
    if layout.dp * layout.cp == 1 and layout.sharding_stage < 3:
        return 0, 0
    stage_k = layout.sharding_stage
    unit = max(inv.layer_max, inv.outer)
    gather = 0
    reduce_bucket, prefetch = st.ds_reduce_bucket_elems, st.ds_prefetch_elems
    if layout.fsdp is not None and job.precision is Precision.AMP_BF16 and st.fsdp_gather_16bit:
        w = 2
    if stage_k == 3 and layout.fsdp is None:
        kept_last = min(inv.layer_max, max(0, st.ds_max_reuse_elems - 2 * inv.head))
        live = max(inv.layer_max, inv.head + kept_last) + min(prefetch, st.ds_max_live_elems)
        gather = min(live, inv.total) * w if n > 1 else 0
    elif stage_k == 3:
        gather = min(inv.outer + (1 + st.fsdp_prefetch_units) * inv.layer_max, inv.total) * w
    if trainable == 0:
        return gather, 0
    if stage_k == 0:
        reduce = trainable * w if st.ddp_bucket_copy else 0
    elif layout.fsdp is not None:
        reduce = min(unit, trainable * n) * w
    elif stage_k == 3:
        reduce = reduce_bucket * w
    else:
        reduce = min(reduce_bucket, trainable * (n if stage_k >= 1 else 1)) * w
    return gather, reduce
