"""FLOPs of one training step, operation by operation, from the model's inventory of linear layers.

Every matrix product of a decoder-only transformer is listed with its shape, so that the compute-time model
(`formulas.compute_time`) can price each one by its size, and the sum is the step's FLOP count:

- a linear layer y = x W^T on m tokens, W of shape (out, in): forward 2·m·in·out; backward input gradient
  dX = dY·W, 2·m·out·in (computed when the layer's input requires a gradient); weight gradient dW = dY^T·X,
  2·out·m·in (computed when W is trainable: not for frozen weights — LoRA, QLoRA, IA3, prompt methods,
  frozen layers). Narayanan et al. 2021, section 5.1: backward = 2 × forward, the "6N" of 6·N·T.
- routed experts (MoE, Fedus et al. 2021): each token passes through top-k of E experts; with balanced routing
  each expert multiplies m·k/E tokens (`Linear.active_copies` = k). The router is an ordinary linear.
  Shared experts are ordinary linears.
- attention core per layer and sequence: Q·K^T and P·V, 2·s_q·s_kv·heads·(d_qk + d_v) forward. GQA and MQA
  share K/V heads but every query head still multiplies (the FLOPs follow the query heads); MLA uses
  d_qk = qk_nope + qk_rope and d_v = v_head_dim (DeepSeek-V2, section 2.1). Eager attention multiplies the
  full s × s matrix (the causal mask is applied after); FlashAttention skips the masked blocks (Dao 2023,
  section 3.1), so it executes about half of a causal square, and only the window of a sliding-window layer.
  Backward: dQ, dK, dP, dV, 2 × forward; FlashAttention also recomputes S = Q·K^T (Dao 2023, algorithm 2):
  2.5 × forward executed.
- the head: 2·m·hidden·vocab forward for every position (transformers computes all logits), its input gradient
  always (the final hidden state requires a gradient whenever anything before it trains), its weight gradient
  when the head (or the embedding it is tied to) trains. The embedding lookup and the loss are not matrix
  products (no FLOPs in this convention, as in torch.utils.flop_counter).
- LoRA (Hu et al. 2021): per adapted linear two extra products x·A^T (in → r) and (·)·B^T (r → out) forward,
  both gradients backward (A and B train); DoRA adds B·A (out × r × in) once per forward for the weight norm
  (peft tuners/lora/dora.py `get_weight_norm`).
- recomputation: full (Chen et al. 2016) reruns each decoder layer's forward in backward but its last product:
  torch's non-reentrant checkpoint stops once the last saved tensor is recomputed (torch/utils/checkpoint.py,
  early stopping), and the block's output projection saves only its input; selective
  (Korthikanti et al. 2022, section 4.2) reruns the attention core only.
- prompt tuning / P-tuning prepend virtual tokens to every sequence (every product runs on s + v tokens);
  prefix tuning / P-tuning v2 add v keys and values per layer (attention over s + v keys).

Which inputs require a gradient: with a trainable embedding (full training) every linear computes dX. With a
frozen embedding the first decoder layer's input needs none, so the layer's input projections (attention
linears that read the hidden state directly: q/k/v, MLA's down projections; with parallel attention also the
MLP's input linears) skip dX. Frozen leading layers (method FREEZE) run no backward at all.

Checked against `torch.utils.flop_counter.FlopCounterMode` on the transformers model under fake tensors with
eager attention in tests/test_flops_trace.py (dense, GQA, MoE, LoRA), within 1 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from llmplan.formulas.model_states import memo_by_model
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.specs.model import AttentionKind, Block, Group, Linear, ModelSpec, Role
from llmplan.specs.training import AttentionImpl, Method, Recompute, TrainingJob


class Pass(str, Enum):
    """Which part of the step an operation belongs to."""

    FORWARD = "forward"
    INPUT_GRAD = "backward-input"
    """dX = dY · W."""
    WEIGHT_GRAD = "backward-weight"
    """dW = dY^T · X."""
    RECOMPUTE = "recompute"
    """A forward rerun in backward (activation recomputation)."""


@dataclass(frozen=True, slots=True)
class Gemm:
    """`count` matrix products of (m × k) · (k × n), in pass `step`; `name` is the linear's module path."""

    name: str
    m: int
    n: int
    k: int
    count: int
    step: Pass

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k * self.count


@dataclass(frozen=True, slots=True)
class AttentionCore:
    """The score and value products of `layers` layers for one micro-batch on one GPU.

    `keys_per_query` is the average number of keys each query multiplies (s for eager, ~(s+1)/2 for a causal
    flash kernel, the window for sliding layers); `matmuls` is 2 forward (Q·K^T, P·V), 4 backward, 5 for
    FlashAttention's backward (S recomputed).
    """

    name: str
    sequences_heads: int
    """Micro-batch sequences × query heads on this GPU."""
    queries: int
    keys_per_query: float
    qk_dim: int
    v_dim: int
    layers: int
    matmuls: float
    step: Pass

    @property
    def flops(self) -> float:
        per_matmul = self.sequences_heads * self.queries * self.keys_per_query * (self.qk_dim + self.v_dim)
        return per_matmul * self.matmuls * self.layers


@dataclass(frozen=True, kw_only=True, slots=True)
class Shard:
    """How one GPU's share of the work is cut: tensor, context and expert parallel degrees."""

    tp: int = 1
    cp: int = 1
    ep: int = 1


@dataclass(frozen=True, slots=True)
class StepOps:
    """The matrix products one GPU runs for one micro-batch of its pipeline stage."""

    gemms: tuple[Gemm, ...]
    attention: tuple[AttentionCore, ...]
    tokens: int
    """Tokens each product runs on (micro-batch × sequence / cp, virtual tokens included)."""
    blocks: tuple[tuple[Block, int], ...] = ()
    """The distinct decoder blocks run and how many layers of each."""

    def flops(self, *steps: Pass) -> float:
        """FLOPs of the listed passes (all passes when none is given)."""
        chosen = set(steps) or set(Pass)
        return sum(g.flops for g in self.gemms if g.step in chosen) + sum(
            a.flops for a in self.attention if a.step in chosen
        )

    @property
    def total(self) -> float:
        return self.flops()


PROMPT_METHODS = (Method.PROMPT, Method.PTUNING)
PREFIX_METHODS = (Method.PREFIX, Method.PTUNING_V2)
LORA_METHODS = (Method.LORA, Method.QLORA, Method.DORA, Method.ADALORA)


def step_ops(
    model: ModelSpec,
    job: TrainingJob,
    adapted: frozenset[str],
    *,
    layers: Sequence[int] | None = None,
    with_head: bool = True,
    shard: Shard | None = None,
) -> StepOps:
    """Every matrix product of one micro-batch on one GPU (module docstring).

    `layers`: the decoder layers this GPU runs (its pipeline stage; all by default); `with_head`: whether it
    runs the head (the last stage). `adapted`: module names of the linears with LoRA-family adapters.
    """
    sh = shard or Shard()
    chosen = range(model.num_hidden_layers) if layers is None else layers
    virtual = job.peft.num_virtual_tokens
    seq = job.seq_len + (virtual if job.method in PROMPT_METHODS else 0)
    tokens = job.micro_batch_size * seq // sh.cp
    embedding_trains = job.method in (Method.FULL,) or job.method in PROMPT_METHODS
    first_trainable = job.peft.freeze_layers if job.method is Method.FREEZE else 0
    gemms: list[Gemm] = []
    attention: list[AttentionCore] = []
    # layers of one kind and one gradient situation share their products: count them once
    kinds, kind_of = layer_kinds(model)
    groups: dict[tuple[int, bool, bool], int] = {}
    for i in chosen:
        key = (kind_of[i], i < first_trainable, i == 0 and not embedding_trains)
        groups[key] = groups.get(key, 0) + 1
    per_kind: dict[int, int] = {}
    for (kind, frozen_layer, input_frozen), count in groups.items():
        block = kinds[kind]
        per_kind[kind] = per_kind.get(kind, 0) + count
        _block_gemms(gemms, model, job, block, adapted, tokens, count, sh, frozen_layer, input_frozen)
        _attention(attention, model, job, block, seq, count, sh, frozen_layer)
    if with_head:
        _head_gemms(gemms, model, job, tokens, sh)
    blocks = tuple((kinds[k], n) for k, n in per_kind.items())
    return StepOps(gemms=tuple(gemms), attention=tuple(attention), tokens=tokens, blocks=blocks)


def layer_kinds(model: ModelSpec) -> tuple[tuple[Block, ...], tuple[int, ...]]:
    """`model.block_kinds` and the index into it of every layer (remembered per model object)."""
    return memo_by_model(_layer_kinds, model)


def _layer_kinds(model: ModelSpec) -> tuple[tuple[Block, ...], tuple[int, ...]]:
    kinds = model.block_kinds
    return kinds, tuple(kinds.index(b) for b in model.layers)


def _split(lin: Linear, model: ModelSpec, sh: Shard) -> tuple[int, int, int]:
    """(in, out, experts on this GPU) after tensor parallelism (`parallel.tensor.shard_linear`: whole kv
    heads per rank) and expert parallelism."""
    inp, out = shard_linear(lin, model, sh.tp)
    experts = lin.copies // sh.ep if lin.group is Group.ROUTED_EXPERTS else 1
    return inp, out, max(1, experts)


_BLOCK_INPUT_ROLES = frozenset({Role.Q, Role.K, Role.V, Role.QKV, Role.Q_DOWN, Role.KV_DOWN})
_MLP_INPUT_ROLES = frozenset({Role.GATE, Role.UP, Role.GATE_UP, Role.ROUTER, Role.SHARED_EXPERT_GATE})


def _reads_block_input(lin: Linear, model: ModelSpec) -> bool:
    """Linears that multiply the block's (normalised) input directly: attention input projections, and with
    parallel attention the MLP's input linears too."""
    if lin.role in _BLOCK_INPUT_ROLES:
        return True
    return model.parallel_attention and lin.role in _MLP_INPUT_ROLES


def _trains(lin: Linear, job: TrainingJob, frozen_layer: bool) -> bool:
    return job.method in (Method.FULL, Method.FREEZE) and not frozen_layer


def _block_gemms(
    out: list[Gemm],
    model: ModelSpec,
    job: TrainingJob,
    block: Block,
    adapted: frozenset[str],
    tokens: int,
    count: int,
    sh: Shard,
    frozen_layer: bool,
    input_frozen: bool,
) -> None:
    rank = job.peft.lora_rank
    lora = job.method in LORA_METHODS
    for lin in block.linears:
        inp, outf, experts = _split(lin, model, sh)
        m = tokens
        n_products = count
        if lin.group is Group.ROUTED_EXPERTS:
            # balanced routing: tokens·k spread over E experts; this GPU holds E/ep of them and receives the
            # tokens of its ep peers routed to them (Megatron-Core token dispatcher)
            m = max(1, tokens * lin.active_copies * sh.ep // lin.copies)
            n_products = count * experts
        out.append(Gemm(lin.name, m, outf, inp, n_products, Pass.FORWARD))
        if job.recompute is Recompute.FULL and not frozen_layer and lin is not block.linears[-1]:
            out.append(Gemm(lin.name, m, outf, inp, n_products, Pass.RECOMPUTE))
        if frozen_layer:
            continue
        if not (input_frozen and _reads_block_input(lin, model)):
            out.append(Gemm(lin.name, m, inp, outf, n_products, Pass.INPUT_GRAD))
        if _trains(lin, job, frozen_layer):
            out.append(Gemm(lin.name, outf, inp, m, n_products, Pass.WEIGHT_GRAD))
        if lora and lin.name in adapted:
            _lora_gemms(
                out,
                lin.name,
                m,
                inp,
                outf,
                rank,
                n_products,
                job,
                input_frozen and _reads_block_input(lin, model),
            )


def _lora_gemms(
    out: list[Gemm],
    name: str,
    m: int,
    inp: int,
    outf: int,
    r: int,
    count: int,
    job: TrainingJob,
    x_frozen: bool,
) -> None:
    a, b = f"{name}.lora_A", f"{name}.lora_B"
    out.append(Gemm(a, m, r, inp, count, Pass.FORWARD))
    out.append(Gemm(b, m, outf, r, count, Pass.FORWARD))
    if job.recompute is Recompute.FULL:
        out.append(Gemm(a, m, r, inp, count, Pass.RECOMPUTE))
        out.append(Gemm(b, m, outf, r, count, Pass.RECOMPUTE))
    out.append(Gemm(b, m, r, outf, count, Pass.INPUT_GRAD))
    if not x_frozen:
        out.append(Gemm(a, m, inp, r, count, Pass.INPUT_GRAD))
    out.append(Gemm(b, outf, r, m, count, Pass.WEIGHT_GRAD))
    out.append(Gemm(a, r, inp, m, count, Pass.WEIGHT_GRAD))
    if job.method is Method.DORA:
        out.append(Gemm(f"{name}.dora_norm", outf, inp, r, count, Pass.FORWARD))


def keys_per_query(seq: int, window: int | None, skips_masked: bool) -> float:
    """Average keys a query multiplies: s for a kernel that computes the whole square (eager); for one that
    skips masked blocks the causal triangle (s+1)/2, or a window w: (w(w+1)/2 + (s−w)·w) / s."""
    if not skips_masked:
        return float(seq)
    if window is None or window >= seq:
        return (seq + 1) / 2
    return (window * (window + 1) / 2 + (seq - window) * window) / seq


def _attention(
    out: list[AttentionCore],
    model: ModelSpec,
    job: TrainingJob,
    block: Block,
    seq: int,
    count: int,
    sh: Shard,
    frozen_layer: bool,
) -> None:
    flash = job.attention is not AttentionImpl.EAGER
    window = model.sliding_window if block.attention is AttentionKind.SLIDING else None
    extra_keys = job.peft.num_virtual_tokens if job.method in PREFIX_METHODS else 0
    keys = keys_per_query(seq, window, flash) + extra_keys
    heads = max(1, model.num_attention_heads // sh.tp)
    if model.mla is not None:
        qk, v = model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim, model.mla.v_head_dim
    else:
        qk = v = model.head_dim
    queries = seq // sh.cp
    sh_heads = job.micro_batch_size * heads

    def core(matmuls: float, step: Pass) -> AttentionCore:
        return AttentionCore("attention", sh_heads, queries, keys, qk, v, count, matmuls, step)

    out.append(core(2, Pass.FORWARD))
    if frozen_layer:
        return
    if job.recompute in (Recompute.FULL, Recompute.SELECTIVE):
        out.append(core(2, Pass.RECOMPUTE))
    out.append(core(5 if flash else 4, Pass.INPUT_GRAD))


def _head_gemms(out: list[Gemm], model: ModelSpec, job: TrainingJob, tokens: int, sh: Shard) -> None:
    head = model.lm_head
    inp, outf, _ = _split(head, model, sh)
    out.append(Gemm("lm_head", tokens, outf, inp, 1, Pass.FORWARD))
    out.append(Gemm("lm_head", tokens, inp, outf, 1, Pass.INPUT_GRAD))
    trains = job.method is Method.FULL or (job.method is Method.FREEZE and not model.tie_word_embeddings)
    if trains:
        out.append(Gemm("lm_head", outf, inp, tokens, 1, Pass.WEIGHT_GRAD))
    for lin in model.final_linears:
        fi, fo, _ = _split(lin, model, sh)
        out.append(Gemm(lin.name, tokens, fo, fi, 1, Pass.FORWARD))
        out.append(Gemm(lin.name, tokens, fi, fo, 1, Pass.INPUT_GRAD))
        if job.method in (Method.FULL, Method.FREEZE):
            out.append(Gemm(lin.name, fo, fi, tokens, 1, Pass.WEIGHT_GRAD))


def matmul_params(model: ModelSpec) -> int:
    """N of the 6N convention: weights one token multiplies (active experts only, the head counted once even
    when tied; embedding tables are lookups, not products). Remembered per model object."""
    return memo_by_model(_matmul_params, model)


def _matmul_params(model: ModelSpec) -> int:
    blocks = sum(
        lin.in_features * lin.out_features * lin.active_copies for b in model.layers for lin in b.linears
    )
    final = sum(lin.in_features * lin.out_features for lin in model.final_linears)
    return blocks + final + model.lm_head.in_features * model.lm_head.out_features


def model_flops_per_token(model: ModelSpec, seq_len: int, *, causal: bool) -> float:
    """Training FLOPs per token of the MFU convention: 6·N + 12·L·h·s (PaLM, Chowdhery et al. 2022, appendix B;
    llm-foundry's MFU), or 6·N + 6·L·h·s with the causal halving (torchtitan, Megatron-LM's
    `num_floating_point_operations`). h = heads · head_dim (MLA: heads · (d_qk + d_v) / 2)."""
    if model.mla is not None:
        width = (
            model.num_attention_heads
            * (model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim + model.mla.v_head_dim)
            / 2
        )
    else:
        width = model.num_attention_heads * model.head_dim
    attn = 12 * model.num_hidden_layers * width * seq_len
    return 6 * matmul_params(model) + (attn / 2 if causal else attn)
