"""The layouts `llmplan plan` searches: every combination of parallel degrees, sharding, offload, schedule,
recomputation and micro-batch that reaches the global batch on a cluster.

Axes (each a finite list, enumerated exhaustively):
- tp: powers of two up to the GPUs per node (tensor parallel stays inside NVLink, Megatron-LM's advice,
  Narayanan et al. 2021 section 3.3); pp: powers of two up to the layer count; cp: powers of two with at least
  `MIN_CP_CHUNK_TOKENS` tokens per rank; ep (MoE only): divisors of the routed experts; dp = gpus / (tp·pp·cp).
- sharding, with the stack that runs it (`llmplan.stacks` refuses the others): DeepSpeed ZeRO 0-3
  (`Stack.DEEPSPEED`), FSDP full-shard / shard-grad-op / hybrid-shard (`Stack.TORCHTITAN`, FSDP2), Megatron's
  DDP and distributed optimizer (ZeRO 0 and 1, `Stack.MEGATRON`).
- offload: none; ZeRO-Offload of the optimizer to CPU (ZeRO >= 1); ZeRO-Infinity of parameters and optimizer
  to CPU or NVMe (ZeRO-3); FSDP's CPUOffload of the parameters (full-shard).
- pipeline schedule (pp > 1): 1F1B, GPipe, zero-bubble ZB-H1, interleaved 1F1B with 2 or 4 virtual stages.
- sequence parallel with tp > 1, on and off; recompute none / selective / full.
- micro-batch: powers of two; grad_accum = global batch / (dp · micro-batch), an integer.

A candidate that breaks a rule is still counted as searched; `llmplan.plan.training` rejects it with the
problem records of `estimate.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    FsdpStrategy,
    OffloadTarget,
    PipelineSchedule,
    Recompute,
    Stack,
    ZeroStage,
)

MIN_CP_CHUNK_TOKENS = 1024
"""Context parallel below 1024 tokens per rank is not searched: ring attention's per-step blocks become too
small to hide the exchange behind (Liu et al. 2023, "Ring Attention", section 3: block size vs. overlap)."""
MAX_MICRO_BATCH = 64
VIRTUAL_STAGES = (2, 4)
DEFAULT_GLOBAL_BATCH_TOKENS = 4 * 1024 * 1024
"""Without --global-batch-tokens: about 4M tokens per step (GPT-3 175B and Llama 2 trained at 3.2-4M,
Brown et al. 2020 table 2.1; Touvron et al. 2023 section 2.2), rounded up to a whole sequence per GPU."""


@dataclass(frozen=True, slots=True)
class Sharding:
    """How the data-parallel group shards the model states, and the stack that runs it."""

    stack: Stack
    zero: ZeroStage = ZeroStage.NONE
    fsdp: FsdpStrategy | None = None

    @property
    def label(self) -> str:
        if self.fsdp is not None:
            return f"fsdp {self.fsdp.value}"
        return f"{'megatron ' if self.stack is Stack.MEGATRON else ''}zero {int(self.zero)}"


@dataclass(frozen=True, slots=True)
class Offload:
    """What goes off the GPU: optimizer and / or parameters, and where."""

    optimizer: OffloadTarget = OffloadTarget.NONE
    params: OffloadTarget = OffloadTarget.NONE

    @property
    def label(self) -> str:
        if self.optimizer is OffloadTarget.NONE and self.params is OffloadTarget.NONE:
            return "none"
        what = (
            "both"
            if self.optimizer is not OffloadTarget.NONE and self.params is not OffloadTarget.NONE
            else ("optimizer" if self.optimizer is not OffloadTarget.NONE else "params")
        )
        target = self.params if self.params is not OffloadTarget.NONE else self.optimizer
        return f"{what} to {target.value}"


SHARDINGS = (
    Sharding(Stack.DEEPSPEED, ZeroStage.NONE),
    Sharding(Stack.DEEPSPEED, ZeroStage.OPTIMIZER),
    Sharding(Stack.DEEPSPEED, ZeroStage.GRADIENTS),
    Sharding(Stack.DEEPSPEED, ZeroStage.PARAMETERS),
    Sharding(Stack.MEGATRON, ZeroStage.NONE),
    Sharding(Stack.MEGATRON, ZeroStage.OPTIMIZER),
    Sharding(Stack.TORCHTITAN, fsdp=FsdpStrategy.FULL_SHARD),
    Sharding(Stack.TORCHTITAN, fsdp=FsdpStrategy.SHARD_GRAD_OP),
    Sharding(Stack.TORCHTITAN, fsdp=FsdpStrategy.HYBRID_SHARD),
)
NO_OFFLOAD = Offload()


def offloads(sharding: Sharding) -> tuple[Offload, ...]:
    """The offload choices `sharding` can run (estimate.validation's rules), no offload first."""
    cpu, nvme = OffloadTarget.CPU, OffloadTarget.NVME
    if sharding.fsdp is FsdpStrategy.FULL_SHARD:
        return (NO_OFFLOAD, Offload(params=cpu))
    if sharding.stack is not Stack.DEEPSPEED or sharding.zero is ZeroStage.NONE:
        return (NO_OFFLOAD,)
    if sharding.zero is ZeroStage.PARAMETERS:
        return (NO_OFFLOAD, Offload(optimizer=cpu), Offload(cpu, cpu), Offload(nvme, nvme))
    return (NO_OFFLOAD, Offload(optimizer=cpu))


@dataclass(frozen=True, slots=True)
class Schedule:
    schedule: PipelineSchedule
    virtual: int = 1


def schedules(pp: int, layers: int) -> tuple[Schedule, ...]:
    if pp == 1:
        return (Schedule(PipelineSchedule.ONE_F_ONE_B),)
    out = [
        Schedule(PipelineSchedule.ONE_F_ONE_B),
        Schedule(PipelineSchedule.GPIPE),
        Schedule(PipelineSchedule.ZERO_BUBBLE),
    ]
    out += [Schedule(PipelineSchedule.INTERLEAVED, v) for v in VIRTUAL_STAGES if layers >= pp * v]
    return tuple(out)


RECOMPUTES = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
"""Least recomputation first: more recomputation only adds time, so the search stops at the first that fits."""


@dataclass(frozen=True, slots=True)
class Degrees:
    dp: int
    tp: int
    pp: int
    cp: int
    ep: int


def _powers(limit: int) -> list[int]:
    out, p = [], 1
    while p <= limit:
        out.append(p)
        p *= 2
    return out


def degrees(model: ModelSpec, gpus: int, gpus_per_node: int, seq_len: int) -> list[Degrees]:
    """Every (dp, tp, pp, cp, ep) whose product dp·tp·pp·cp is `gpus` (module docstring for the axes)."""
    out = []
    experts = model.moe.num_experts if model.moe is not None else 1
    for tp in _powers(min(gpus_per_node, gpus)):
        for pp in _powers(min(model.num_hidden_layers, gpus // tp)):
            for cp in _powers(max(1, seq_len // MIN_CP_CHUNK_TOKENS)):
                if gpus % (tp * pp * cp):
                    continue
                dp = gpus // (tp * pp * cp)
                for ep in [e for e in range(1, experts + 1) if experts % e == 0 and (dp * cp * tp) % e == 0]:
                    out.append(Degrees(dp, tp, pp, cp, ep))
    return out


def micro_batches(global_seqs: int, dp: int) -> list[tuple[int, int]]:
    """(micro_batch, grad_accum) pairs with dp · micro_batch · grad_accum = global_seqs."""
    if global_seqs % dp:
        return []
    per_rank = global_seqs // dp
    return [(mb, per_rank // mb) for mb in _powers(min(MAX_MICRO_BATCH, per_rank)) if per_rank % mb == 0]


def default_global_seqs(gpus: int, seq_len: int) -> int:
    """DEFAULT_GLOBAL_BATCH_TOKENS in sequences, rounded up to a multiple of the GPU count (every dp reaches
    it)."""
    seqs = -(-DEFAULT_GLOBAL_BATCH_TOKENS // seq_len)
    return -(-seqs // gpus) * gpus
