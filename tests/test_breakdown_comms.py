"""The shared breakdown record and the collective-communication model."""

import math

import pytest

from llmplan.breakdown import Breakdown, Term, Unit
from llmplan.errors import SpecError
from llmplan.formulas.comms import (
    NCCL_BASE_LATENCY_S,
    Collective,
    CommGroup,
    bus_factor,
    collective_time,
    latency_steps,
)


def test_term_rejects_non_finite_values():
    with pytest.raises(ValueError, match="non-finite"):
        Term("weights", math.nan, Unit.BYTES)


def test_breakdown_total_get_and_json():
    inner = Term("comm.tp", 0.5, Unit.SECONDS, "0.5 s", "x")
    b = Breakdown(Unit.SECONDS, (Term("compute", 1.5, Unit.SECONDS), Term("comm", 0.5, Unit.SECONDS, parts=(inner,))))
    assert b.total == 2.0
    assert b.get("comm.tp") is inner
    assert b.value("missing") == 0.0
    with pytest.raises(KeyError, match="compute, comm"):
        b.get("missing")
    assert b.to_json()[1]["parts"][0] == {"name": "comm.tp", "value": 0.5, "unit": "s", "formula": "0.5 s", "source": "x"}


def test_breakdown_refuses_mixed_units():
    with pytest.raises(ValueError, match="bytes"):
        Breakdown(Unit.SECONDS, (Term("weights", 1, Unit.BYTES),))


@pytest.mark.parametrize(
    ("kind", "n", "factor"),
    [
        (Collective.ALL_REDUCE, 8, 2 * 7 / 8),
        (Collective.REDUCE_SCATTER, 8, 7 / 8),
        (Collective.ALL_GATHER, 4, 3 / 4),
        (Collective.ALL_TO_ALL, 2, 1 / 2),
        (Collective.BROADCAST, 8, 1.0),
        (Collective.P2P, 2, 1.0),
        (Collective.ALL_REDUCE, 1, 0.0),
    ],
)
def test_bus_factors_are_nccl_tests(kind, n, factor):
    assert bus_factor(kind, n) == pytest.approx(factor)


def test_all_reduce_uses_the_cheaper_of_ring_and_tree_latency():
    assert latency_steps(Collective.ALL_REDUCE, 4) == 4  # ring 6, tree 4
    assert latency_steps(Collective.ALL_REDUCE, 1024) == 20
    assert latency_steps(Collective.ALL_GATHER, 8) == 7


def test_large_all_reduce_inside_a_node_is_bandwidth_bound():
    # 1 GiB over 8 GPUs at 450 GB/s one way: 2·7/8 · 2^30 / 450e9 = 4.175 ms, plus ~10 µs of latency
    g = CommGroup(size=8, intra_bytes_per_s=450e9)
    t = collective_time("comm.dp", Collective.ALL_REDUCE, 2**30, g)
    assert t.value == pytest.approx(2 * 7 / 8 * 2**30 / 450e9, rel=0.01)
    assert t.unit is Unit.SECONDS and "all-reduce n=8" in t.formula


def test_group_over_nodes_runs_at_the_network_rate():
    inside = CommGroup(size=16, nodes=1, intra_bytes_per_s=450e9)
    across = CommGroup(size=16, nodes=2, intra_bytes_per_s=450e9, inter_bytes_per_s=50e9)
    t_in = collective_time("a", Collective.ALL_GATHER, 1e9, inside).value
    t_out = collective_time("a", Collective.ALL_GATHER, 1e9, across).value
    assert t_out / t_in == pytest.approx(9, rel=0.02)


def test_small_messages_are_latency_bound_and_one_rank_is_free():
    g = CommGroup(size=8, intra_bytes_per_s=450e9)
    assert collective_time("a", Collective.ALL_REDUCE, 1024, g).value > NCCL_BASE_LATENCY_S
    assert collective_time("a", Collective.ALL_REDUCE, 1024, CommGroup(size=1, intra_bytes_per_s=1e9)).value == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0, "intra_bytes_per_s": 1e9},
        {"size": 8, "intra_bytes_per_s": 0.0},
        {"size": 8, "intra_bytes_per_s": math.nan},
        {"size": 8, "nodes": 2, "intra_bytes_per_s": 1e9},
        {"size": 8, "nodes": 9, "intra_bytes_per_s": 1e9, "inter_bytes_per_s": 1e9},
    ],
)
def test_bad_groups_name_the_field(kwargs):
    with pytest.raises(SpecError):
        CommGroup(**kwargs)


def test_bad_message_size_is_refused():
    with pytest.raises(SpecError, match="message bytes"):
        collective_time("a", Collective.ALL_REDUCE, -1, CommGroup(size=2, intra_bytes_per_s=1e9))
