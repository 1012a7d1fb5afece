"""Pipeline parallelism: the decoder layers each stage owns (Huang et al. 2019 "GPipe"; Narayanan et al. 2021
"Megatron-LM at scale", section 2.2).

Stage s holds its layers (`stage_layers`: L // pp each, the first L % pp stages one more, Megatron's default
even split; torch.distributed.pipelining `split_spec` by layer count); the first stage also holds the
embeddings, the last the final norm, final linears and the head (an untied head; a tied one is a second copy of
the embedding on the last stage when pp > 1, as in Megatron). Whatever a stage holds, trainable or frozen, is
counted on that stage only.
"""

from __future__ import annotations

from llmplan.specs.training import Layout, PipelineSchedule


def stage_layers(num_layers: int, pp: int) -> tuple[range, ...]:
    """Decoder layers of each pipeline stage (module docstring)."""
    base, extra = divmod(num_layers, pp)
    out, start = [], 0
    for s in range(pp):
        n = base + (1 if s < extra else 0)
        out.append(range(start, start + n))
        start += n
    return tuple(out)


def is_first(stage: int) -> bool:
    """The first stage owns the embeddings."""
    return stage == 0


def is_last(stage: int, pp: int) -> bool:
    """The last stage owns the final norm, the final linears and the head."""
    return stage == pp - 1


def micro_batches_in_flight(layout: Layout, micro_batches: int) -> tuple[int, int]:
    """Micro-batches in flight on stage 0 as a fraction (numerator, denominator).

    1F1B: min(pp, m); GPipe: m; interleaved with v virtual stages: pp + (pp - 1) / v when m >= pp
    (Korthikanti et al. 2022, section 4.2.3; Narayanan et al. 2021, section 2.2).
    """
    pp = layout.pp
    if pp == 1:
        return (1, 1)
    if layout.pp_schedule is PipelineSchedule.GPIPE:
        return (micro_batches, 1)
    if layout.pp_schedule is PipelineSchedule.INTERLEAVED and micro_batches >= pp:
        v = layout.pp_virtual_stages
        return (pp * v + pp - 1, v)
    return (min(pp, micro_batches), 1)


def scale_by(value: int, fraction: tuple[int, int]) -> int:
    """value · numerator / denominator, rounded down."""
    return value * fraction[0] // fraction[1]
