"""What one rank holds of the base model and of its adapters, before ZeRO / FSDP sharding: the tensor,
pipeline and expert splits (`formulas.parallel`) applied to the parameter inventory of the ModelSpec, and
which of those elements train.

Stage ownership: a pipeline stage counts exactly the layers it owns (`parallel.pipeline.stage_layers`), the
embeddings on the first stage and the final norm, final linears and head on the last, and for each of them
whether the method trains it (`rank_trainable`): a stage whose layers are all frozen holds no gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmplan.formulas.parallel.expert import expert_copies_on_rank
from llmplan.formulas.parallel.pipeline import is_first, is_last, stage_layers
from llmplan.formulas.parallel.tensor import bias_on_rank, shard_linear
from llmplan.formulas.params import count_params
from llmplan.formulas.peft import (
    LORA_FAMILY,
    TrainableParams,
    lora_rank,
    lora_target_linears,
    trainable_params,
)
from llmplan.formulas.quant import linear_weight_bytes
from llmplan.specs.inference import QuantFormat
from llmplan.specs.model import Block, Group, ModelSpec
from llmplan.specs.training import Method, TrainingJob


@dataclass(frozen=True, slots=True)
class RankInventory:
    """Base-model elements one rank holds before ZeRO / FSDP sharding (after tp, pp and ep splits)."""

    dense: int
    """Elements outside the routed experts."""
    expert: int
    """Routed-expert elements (sharded by ZeRO over dp·cp/ep)."""
    block_linear_weights: int
    """Weights of the decoder blocks' linears other than routers: what QLoRA stores in NF4."""
    nf4_bytes: int
    """Those weights in NF4 with double quantization (payload + constants)."""
    factored: int
    """Adafactor state elements of all tensors: rows + cols per matrix, numel per vector."""
    largest: int
    """Largest single parameter tensor."""
    layer_max: int
    """Largest decoder layer (an FSDP unit / a ZeRO-3 gather)."""
    outer: int
    """Embedding + head + final tensors on this rank (FSDP's root unit)."""
    head: int
    """Output head's weight elements on this rank (the embedding's, when tied), 0 off the last stage."""

    @property
    def total(self) -> int:
        return self.dense + self.expert


_MEMO: dict[tuple, tuple[ModelSpec, object]] = {}
_MEMO_MAX = 512


def memo_by_model(fn: Callable, model: ModelSpec, *args: object) -> object:
    """fn(model, *args), remembered per model object: specs are frozen, and hashing a whole ModelSpec (every
    layer's inventory) would cost more than the counts it saves."""
    key = (fn.__qualname__, id(model), *args)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    value = fn(model, *args)
    _MEMO[key] = (model, value)
    return value


def param_total(model: ModelSpec) -> int:
    """count_params(model).total, remembered per model object."""
    return memo_by_model(_param_total, model)


def _param_total(model: ModelSpec) -> int:
    return count_params(model).total


def trainable_split(model: ModelSpec, job: TrainingJob) -> TrainableParams:
    """`formulas.peft.trainable_params`, remembered per (model object, method, PEFT settings)."""
    return memo_by_model(_trainable_split, model, job.method, job.peft)


def _trainable_split(model: ModelSpec, method: Method, peft: object) -> TrainableParams:
    return trainable_params(model, TrainingJob(method=method, peft=peft))


def rank_inventory(model: ModelSpec, tp: int, ep: int, pp: int, stage: int) -> RankInventory:
    """Count the base model's elements on one (tp, ep) rank of pipeline `stage` (remembered per model)."""
    return memo_by_model(_rank_inventory, model, tp, ep, pp, stage)


def _rank_inventory(model: ModelSpec, tp: int, ep: int, pp: int, stage: int) -> RankInventory:
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    dense = expert = lin_w = nf4 = factored = 0
    largest = layer_max = 0
    memo: dict[int, tuple[int, ...]] = {}
    for i in layers:
        block = model.layers[i]
        cost = memo.get(id(block))
        if cost is None:
            cost = memo[id(block)] = block_counts(model, block, tp, ep)
        dense += cost[0]
        expert += cost[1]
        lin_w += cost[2]
        nf4 += cost[3]
        factored += cost[4]
        largest = max(largest, cost[5])
        layer_max = max(layer_max, cost[0] + cost[1])
    outer = head_elems = 0
    vocab = -(-model.vocab_size // tp)
    if is_first(stage):
        for t in model.embedding:
            n = vocab * (t.numel // model.vocab_size) if t.group is Group.EMBEDDING else t.numel
            outer += n
            factored += vocab + t.numel // model.vocab_size if t.group is Group.EMBEDDING else n
            largest = max(largest, n)
    if is_last(stage, pp):
        for t in model.final:
            outer += t.numel
            factored += t.numel
        for lin in model.final_linears:
            outer += lin.numel
            factored += lin.in_features + lin.out_features
        head = model.lm_head
        head_elems = vocab * head.in_features
        if not model.tie_word_embeddings or pp > 1:
            outer += head_elems + (vocab if head.bias else 0)
            factored += vocab + head.in_features
            largest = max(largest, head_elems)
    return RankInventory(
        dense=dense + outer,
        expert=expert,
        block_linear_weights=lin_w,
        nf4_bytes=nf4,
        factored=factored,
        largest=largest,
        layer_max=layer_max,
        outer=outer,
        head=head_elems,
    )


def block_counts(model: ModelSpec, block: Block, tp: int, ep: int) -> tuple[int, ...]:
    """(dense, expert, block linear weights, their NF4 bytes, Adafactor elements, largest tensor, dense biases,
    expert biases) of one decoder layer on one (tp, ep) rank."""
    dense = expert = lin_w = nf4 = factored = largest = bias_dense = bias_expert = 0
    for t in block.tensors:
        dense += t.numel
        factored += t.numel
        largest = max(largest, t.numel)
        bias_dense += t.numel if t.is_bias else 0
    for lin in block.linears:
        in_f, out_f = shard_linear(lin, model, tp)
        routed = lin.group is Group.ROUTED_EXPERTS
        copies = expert_copies_on_rank(lin, ep)
        bias = bias_on_rank(lin, out_f)
        n = copies * (in_f * out_f + bias)
        if routed:
            expert += n
            bias_expert += copies * bias
        else:
            dense += n
            bias_dense += copies * bias
        factored += copies * (in_f + out_f + bias)
        largest = max(largest, copies * in_f * out_f)
        if lin.group is not Group.ROUTER:
            lin_w += copies * in_f * out_f
            p, m = linear_weight_bytes(QuantFormat.NF4, in_f, out_f)
            nf4 += copies * (p + m)
    return dense, expert, lin_w, nf4, factored, largest, bias_dense, bias_expert


def rank_trainable(
    model: ModelSpec, job: TrainingJob, tp: int, ep: int, pp: int, stage: int
) -> tuple[int, int]:
    """(dense, routed-expert) base-model elements that train on one (tp, ep) rank of pipeline `stage`, counted
    on the tensors the stage owns (module docstring), remembered per model.

    full: everything the rank holds; freeze (`formulas.peft.freeze_trainable`): its layers from
    `freeze_layers` on, and on the last stage the final norm(s), final linears and an untied head (the
    embeddings, and a tied head's copy of them, stay frozen); bitfit: the biases it holds; other methods:
    none (the adapters are counted apart, `adapter_on_rank`)."""
    freeze = job.peft.freeze_layers if job.method is Method.FREEZE else 0
    return memo_by_model(_rank_trainable, model, job.method, freeze, tp, ep, pp, stage)


def _rank_trainable(
    model: ModelSpec, method: Method, freeze: int, tp: int, ep: int, pp: int, stage: int
) -> tuple[int, int]:
    if method is Method.FULL:
        inv = rank_inventory(model, tp, ep, pp, stage)
        return inv.dense, inv.expert
    if method not in (Method.FREEZE, Method.BITFIT):
        return 0, 0
    bitfit = method is Method.BITFIT
    dense = expert = 0
    for i in stage_layers(model.num_hidden_layers, pp)[stage]:
        if bitfit or i >= freeze:
            cost = block_counts(model, model.layers[i], tp, ep)
            dense += cost[6] if bitfit else cost[0]
            expert += cost[7] if bitfit else cost[1]
    vocab = -(-model.vocab_size // tp)
    head = model.lm_head
    if bitfit and is_first(stage):
        dense += sum(t.numel for t in model.embedding if t.is_bias)
    if is_last(stage, pp):
        dense += sum(t.numel for t in model.final if t.is_bias or not bitfit)
        for lin in model.final_linears:
            dense += lin.bias_numel if bitfit else lin.numel
        untied_or_copy = not model.tie_word_embeddings or pp > 1
        head_bias = vocab if head.bias and untied_or_copy else 0
        if bitfit:
            dense += head_bias
        elif not model.tie_word_embeddings:
            dense += vocab * head.in_features + head_bias
    return dense, expert


INPUT_ADAPTERS = frozenset({Method.PROMPT, Method.PTUNING})
"""Methods whose trainable parameters sit before the first decoder layer (prompt embeddings and encoder)."""


def adapter_on_rank(
    model: ModelSpec, job: TrainingJob, tp: int, pp: int, stage: int, total: int
) -> tuple[int, int]:
    """(adapter elements, Adafactor state elements of the adapters) on one rank, remembered per model.

    LoRA-family: A (r × in) and B (out × r) of the adapted linears of the stage, split like their base layer
    (column: B split, row: A split), scaled to peft's exact total (which adds DoRA magnitudes / AdaLoRA's E);
    Adafactor factors A into r + in and B into out + r. Prompt tuning and p-tuning: all on the first stage,
    which owns the embeddings. Other methods (per-layer vectors, prefixes, bottleneck adapters, norm copies):
    the whole adapter spread over stages by layer count, with unfactored states."""
    return memo_by_model(_adapter_on_rank, model, job.method, job.peft, tp, pp, stage, total)


def _adapter_on_rank(
    model: ModelSpec, method: Method, peft: object, tp: int, pp: int, stage: int, total: int
) -> tuple[int, int]:
    if total == 0:
        return 0, 0
    layers = stage_layers(model.num_hidden_layers, pp)[stage]
    if method in INPUT_ADAPTERS:
        # the soft prompt (and p-tuning's encoder) feeds the embeddings: the first stage owns it
        return (total, total) if is_first(stage) else (0, 0)
    if method not in LORA_FAMILY:
        local = -(-total * len(layers) // model.num_hidden_layers) if pp > 1 else total
        return local, local
    linears = lora_target_linears(model, peft.lora_targets, convert_moe=method is not Method.ADALORA)
    whole = local = factored = 0
    for i, lin in linears:
        r = lora_rank(model, lin, peft.lora_rank) * lin.copies
        whole += r * (lin.in_features + lin.out_features)
        if i in layers:
            in_f, out_f = shard_linear(lin, model, tp)
            local += r * (in_f + out_f)
            factored += 2 * r + in_f + out_f
    return (-(-total * local // whole), factored) if whole else (0, 0)
