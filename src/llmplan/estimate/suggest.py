"""When a training job does not fit: the smallest combinations of changes under which it does, each one
re-estimated, never guessed.

Candidates come from `estimate.changes` (the axes of a job, their combinations in order of how much they
change: `combination_key`). Each is applied to the job and layout and estimated with `estimate_training`; a
combination that cannot run (validation rejects it) is skipped, one that fits and is not tight
(`llmplan.limits.tight_headroom`: a run that fits by a few hundred MiB on paper fails on fragmentation or
longer sequences) becomes a `Suggestion`. Not tried: a combination that goes at least as far as a fitting one on
every axis that one touches (it only adds change), and one that contains every move of a combination that
could not run. Every combination that keeps the method is ranked before one that changes it: a full
fine-tune of Llama-3.1-8B on one 80 GB GPU fits with pure bf16 and 8-bit AdamW (about 49 GiB) and stays a
full fine-tune.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.changes import (
    METHOD_AXIS,
    Change,
    Move,
    Part,
    apply_changes,
    axes,
    combinations,
    dominates,
)
from llmplan.estimate.error_bands import device_band
from llmplan.estimate.training import Phase, TrainingEstimate, estimate_training
from llmplan.estimate.validation import problems
from llmplan.limits import tight_headroom
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, TrainingJob

KEEP_METHOD_LIMIT = 3
"""Suggestions that keep the method, at most."""
PER_METHOD_LIMIT = 1
"""Suggestions per other method (LoRA, QLoRA), at most."""
TRIES_PER_METHOD = 1024
"""Estimates tried per method level before giving up on it (an estimate takes 0.1-0.3 ms once the model's
inventory is remembered: at most about a quarter of a second per level)."""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A combination of changes under which the job fits, and the re-estimated result on the busiest GPU."""

    changes: tuple[Change, ...]
    why: tuple[str, ...]
    """One sentence per move: the mechanism by which it saves memory."""
    cost: int
    """Summed ranking weights of the moves (`estimate.changes` docstring)."""
    job: TrainingJob
    """The job with the changes made (what the estimate below is of)."""
    layout: Layout
    device_bytes: int
    """The re-estimate's device counter (what nvidia-smi shows)."""
    saved_bytes: int
    """Original device bytes - `device_bytes`."""
    headroom_bytes: int
    host_bytes: int
    """Host RAM per GPU that offload needs."""
    nvme_bytes: int
    peak_phase: Phase

    @property
    def total(self) -> int:
        return self.device_bytes

    @property
    def keeps_method(self) -> bool:
        return all(not (c.part is Part.JOB and c.field == "method") for c in self.changes)


def suggest(
    model: ModelSpec,
    job: TrainingJob,
    layout: Layout,
    cluster: Cluster,
    *,
    baseline: TrainingEstimate | None = None,
) -> tuple[Suggestion, ...]:
    """Combinations of changes under which the job fits with the margin, ranked by `changes.combination_key`
    (empty when it fits already): at most KEEP_METHOD_LIMIT that keep the method, then PER_METHOD_LIMIT per
    other method."""
    base = baseline or estimate_training(model, job, layout, cluster)
    if base.fits:
        return ()
    found_axes = axes(job, layout, cluster)
    fitting: list[tuple[Move, ...]] = []
    found: list[Suggestion] = []
    tries: dict[int, int] = {}
    invalid: list[frozenset[Move]] = []
    for moves in combinations(found_axes):
        level = method_level(moves)
        limit = KEEP_METHOD_LIMIT if level == 0 else PER_METHOD_LIMIT
        if tries.get(level, 0) >= TRIES_PER_METHOD:
            continue
        if sum(1 for f in fitting if method_level(f) == level) >= limit:
            continue
        if any(dominates(f, moves) for f in fitting) or any(bad <= set(moves) for bad in invalid):
            continue
        tries[level] = tries.get(level, 0) + 1
        result = reestimate(model, job, layout, cluster, moves)
        if result is None:
            invalid.append(frozenset(moves))
        elif fits_with_margin(result[2]):
            fitting.append(moves)
            found.append(_suggestion(moves, *result, base))
    return tuple(found)


def fits_with_margin(est: TrainingEstimate) -> bool:
    """True when the estimate fits with room to spare: not tight by `llmplan.limits.tight_headroom` (headroom
    at least TIGHT_FRACTION of the device, TIGHT_BYTES and the estimate's error band)."""
    band = device_band(est.job, est.layout, est.device_bytes)
    width = int(band[1].value) if band else 0
    return est.fits and tight_headroom(est.headroom_bytes, est.capacity_bytes, width) is None


def method_level(moves: tuple[Move, ...]) -> int:
    """0 when the combination keeps the method, else the level of its method move (LoRA 1, QLoRA 2)."""
    return sum(m.level for m in moves if m.axis == METHOD_AXIS)


def reestimate(
    model: ModelSpec, job: TrainingJob, layout: Layout, cluster: Cluster, moves: tuple[Move, ...]
) -> tuple[TrainingJob, Layout, TrainingEstimate] | None:
    """The job and layout with the moves' changes made, and their estimate; None when they cannot run: a
    changed spec that is invalid on its own, any `estimate.validation.problems`, or a sharding the stack does
    not run."""
    changes = tuple(c for m in moves for c in m.changes)
    try:
        new_job, new_layout = apply_changes(job, layout, changes)
    except LlmplanError:
        return None
    if problems(model, new_job, new_layout, cluster):
        return None
    try:
        return new_job, new_layout, estimate_training(model, new_job, new_layout, cluster)
    except LlmplanError:
        return None


def _suggestion(
    moves: tuple[Move, ...], job: TrainingJob, layout: Layout, est: TrainingEstimate, base: TrainingEstimate
) -> Suggestion:
    return Suggestion(
        changes=tuple(c for m in moves for c in m.changes),
        why=tuple(m.why for m in moves),
        cost=sum(m.cost for m in moves),
        job=job,
        layout=layout,
        device_bytes=est.device_bytes,
        saved_bytes=base.device_bytes - est.device_bytes,
        headroom_bytes=est.headroom_bytes,
        host_bytes=est.host_bytes,
        nvme_bytes=est.nvme_bytes,
        peak_phase=est.peak_phase,
    )
