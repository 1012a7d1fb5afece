"""Time of one pipeline-parallel step from the stages' own forward and backward times.

Stage i takes f_i forward and b_i backward per micro-batch (b_i = input-gradient part b'_i + weight-gradient
part w_i); m micro-batches; p stages; the slowest stage's f + b is t_max.

- GPipe and 1F1B (Narayanan et al. 2021, section 2.2, figure 4): the last micro-batch leaves the pipeline after
  every stage has run it once, and the slowest stage works without pause in between:
      T = (m − 1) · t_max + Σ_i (f_i + b_i),   bubble = T − m · t_max.
  With equal stages this is the paper's (p − 1)/m bubble fraction; with unequal stages (embedding on the first,
  head and loss on the last) the sum and the maximum differ, which the formula keeps.
- interleaved 1F1B with v virtual stages per GPU (ibid., section 2.2.2): each GPU holds v chunks of 1/v of its
  layers, the fill and drain run chunk by chunk: bubble = (Σ_i (f_i + b_i) − t_max) / v. Megatron requires the
  micro-batches to be a multiple of p (`--num-layers-per-virtual-pipeline-stage`), and every virtual stage
  needs at least one layer: L ≥ p · v.
- zero bubble, ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", section 3.1): the weight-gradient
  passes W fill the drain; with 1F1B's memory the bubble shrinks from (p − 1)(F + B + W) to (p − 1)(F + B − W):
      bubble = Σ over the stages but the slowest of max(0, f_i + b'_i − w_i).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LayoutError
from llmplan.specs.training import PipelineSchedule


@dataclass(frozen=True, slots=True)
class StageTime:
    """Seconds of one micro-batch on one pipeline stage."""

    forward_s: float
    backward_s: float
    """Input and weight gradients (and recomputation) together."""
    weight_grad_s: float = 0.0
    """The weight-gradient part of backward_s (what zero-bubble schedules move into the bubble)."""

    @property
    def total(self) -> float:
        return self.forward_s + self.backward_s


@dataclass(frozen=True, slots=True)
class PipelineTime:
    """Busy time of the slowest stage and the bubble; `total` is the pipeline's step (without the optimizer)."""

    busy_s: float
    """m · t_max: the slowest stage's work."""
    bubble_s: float

    @property
    def total(self) -> float:
        return self.busy_s + self.bubble_s


def check_schedule(
    schedule: PipelineSchedule, *, pp: int, virtual: int, layers: int, micro_batches: int
) -> None:
    """LayoutError for a schedule the layout cannot run (module docstring)."""
    if schedule is PipelineSchedule.INTERLEAVED:
        if virtual < 2:
            raise LayoutError(
                f"pp_virtual_stages: {virtual} is too few for interleaved 1F1B (allowed: --virtual-stages 2 or more)"
            )
        if layers < pp * virtual:
            raise LayoutError(
                f"pp_schedule: interleaved 1F1B with pp={pp} and {virtual} virtual stages needs at least "
                f"pp·v = {pp * virtual} layers; the model has {layers} (allowed: fewer virtual stages)"
            )
        if pp > 1 and micro_batches % pp:
            raise LayoutError(
                f"grad_accum: interleaved 1F1B needs the micro-batches per step ({micro_batches}) to be a "
                f"multiple of pp={pp} (Megatron-LM schedules.py; allowed: multiples of {pp})"
            )
    elif virtual != 1:
        raise LayoutError(
            f"pp_virtual_stages: {virtual} virtual stages need the interleaved schedule, not {schedule.value} "
            "(allowed: --virtual-stages 1, or --pp-schedule interleaved)"
        )


def pipeline_time(
    stages: list[StageTime], micro_batches: int, schedule: PipelineSchedule, virtual: int = 1
) -> PipelineTime:
    """Step time of `micro_batches` through `stages` under `schedule` (module docstring)."""
    t_max = max(s.total for s in stages)
    busy = micro_batches * t_max
    if len(stages) == 1:
        return PipelineTime(busy, 0.0)
    fill = sum(s.total for s in stages) - t_max
    if schedule is PipelineSchedule.INTERLEAVED:
        bubble = fill / virtual
    elif schedule is PipelineSchedule.ZERO_BUBBLE:
        slowest = max(stages, key=lambda s: s.total)
        others = [s for s in stages if s is not slowest] or stages
        bubble = sum(max(0.0, s.total - 2 * s.weight_grad_s) for s in others)
    else:
        bubble = fill
    return PipelineTime(busy, bubble)
