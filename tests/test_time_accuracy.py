"""The time estimate against published training speeds (docs/accuracy-time.md): a fast subset gates CI.

The subset is every third fully specified llm-foundry row (MPT 125M-70B on A100 40/80 GB and H100, 8-512 GPUs,
FSDP) plus the Megatron-LM GPT-3 175B step: the thresholds are issue 10's acceptance (median |error| <= 10 %,
90th percentile <= 25 %), the full table is `python benchmarks/time_accuracy.py`.
"""

from __future__ import annotations

import pytest

from llmplan.estimate.rules_time import time_rules
from llmplan.validate.stats import ErrorStats
from llmplan.validate.time_cases import TOKENS_PER_S_PER_GPU, compare, load_cases, seed_rule
from llmplan.validate.time_report import MEDIAN_MAX_PCT, P90_MAX_PCT, rank_correlation


@pytest.fixture(scope="module")
def cases():
    return load_cases()[0]


def test_fast_subset_meets_the_acceptance_thresholds(cases):
    primary = [c for c in cases if c.fully_specified and c.metric == TOKENS_PER_S_PER_GPU]
    subset = primary[::3]
    stats = ErrorStats.of([compare(c).error_pct for c in subset])
    assert stats is not None and stats.n >= 60
    assert stats.median_abs_pct <= MEDIAN_MAX_PCT, stats
    assert stats.p90_abs_pct <= P90_MAX_PCT, stats


def test_megatron_gpt3_step_time_within_25_percent(cases):
    gpt3 = next(c for c in cases if c.model_id == "gpt-3-175b" and c.metric == "step_time_s")
    assert abs(compare(gpt3).error_pct) <= 25.0


def test_layout_order_kept_within_a_group(cases):
    """MPT-1B on A100 80 GB: the measured order of its 8 layouts (micro-batch × sequence length)."""
    group = [c for c in cases if c.group == "mpt-1b on dgx-a100-80gb"]
    assert len(group) >= 4
    comps = [compare(c) for c in group]
    assert rank_correlation([c.case.measured for c in comps], [c.predicted for c in comps]) >= 0.8


def test_every_case_is_estimated_and_the_seed_rule_is_a_peer(cases):
    for case in cases:
        assert seed_rule(case) > 0
    assert {c.metric for c in cases} == {TOKENS_PER_S_PER_GPU, "step_time_s"}


def test_rank_correlation():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)


def test_seed_time_rule_reproduced_exactly_and_explained():
    rows = time_rules()
    exact = [r for r in rows if r.why.startswith("agrees exactly")]
    assert len(exact) == 2
    for row in exact:
        assert row.llmplan_value == pytest.approx(row.rule_value, rel=1e-12)
    for row in rows:
        assert 0.5 < row.ratio < 2.0, row
        assert row.unit == "days"
