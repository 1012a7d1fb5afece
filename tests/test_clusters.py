"""Cluster presets and rank placement: data with sources, clear errors, the CommGroup each parallel group runs on."""

from __future__ import annotations

import json

import pytest

from llmplan import catalog
from llmplan.cli import main
from llmplan.errors import LayoutError, SpecError, UnknownIdError
from llmplan.formulas import comms
from llmplan.formulas.comms import Collective, collective_time
from llmplan.formulas.topology import comm_group, group_span, group_stride, parallel_group
from llmplan.specs import hardware
from llmplan.specs.hardware import Cluster, Direction, Link, LinkKind

REQUIRED = [  # presets the issue names, by a name a user would type
    "dgx-a100-40gb",
    "dgx-a100-80gb",
    "dgx-h100",
    "hgx-h200",
    "dgx-b200",
    "gb200-nvl72",
    "p4d.24xlarge",
    "p4de.24xlarge",
    "p5.48xlarge",
    "a3-highgpu-8g",
    "a3-megagpu-8g",
    "nd-a100-v4",
    "nd-h100-v5",
    "pcie-8x-l40s",
    "pcie-8x-a10g",
    "pcie-8x-rtx-4090",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_every_named_preset_exists(name):
    assert catalog.cluster(name).num_gpus >= 8


def test_presets_have_sources_and_consistent_links():
    presets = catalog.clusters()
    assert len(presets) >= 16
    keys = [k.lower() for c in presets for k in (c.id, *catalog.cluster_aliases(c.id))]
    assert len(keys) == len(set(keys))
    for c in presets:
        assert c.sources and c.name and c.nodes == 1
        for link in (c.intra_link, c.inter_node):
            assert link is not None, c.id
            assert 0 < link.bus_efficiency <= 1 and link.source, (c.id, link.name)
            assert link.hop_latency_s == link.kind.hop_latency_s
        assert c.inter_node.kind is LinkKind.NETWORK
        # the network share per GPU never exceeds what the GPUs talk over inside the node
        assert c.inter_node.bus_bytes_per_s < c.intra_link.bus_bytes_per_s


def test_accelerator_links_carry_kind_and_efficiency():
    for acc in catalog.accelerators():
        for link in (acc.intra_node, acc.host):
            if link is not None:
                assert 0 < link.bus_efficiency <= 1 and link.source, (acc.id, link.name)
    assert catalog.accelerator("h100").intra_node.kind is LinkKind.NVLINK
    assert catalog.accelerator("h100").host.kind is LinkKind.PCIE


def test_published_figures():
    h100 = catalog.cluster("dgx-h100")
    assert h100.inter_node.one_way_bytes_per_s == 50e9  # 400 Gb/s per GPU
    assert h100.intra_link.one_way_bytes_per_s == 450e9  # 900 GB/s both ways
    assert catalog.cluster("dgx-a100").inter_node.one_way_bytes_per_s == 25e9  # HDR 200 Gb/s
    assert catalog.cluster("p4d").inter_node.one_way_bytes_per_s == 400e9 / 8 / 8  # 400 Gbps per instance
    assert catalog.cluster("p5").inter_node.one_way_bytes_per_s == 3200e9 / 8 / 8
    assert catalog.cluster("gb200-nvl72").gpus_per_node == 72
    assert catalog.cluster("pcie-8x-l40s").intra_link.kind is LinkKind.PCIE


def test_one_definition_of_the_hop_latencies():
    assert comms.NVLINK_HOP_LATENCY_S is hardware.NVLINK_HOP_LATENCY_S == 0.6e-6
    assert comms.PCIE_HOP_LATENCY_S is hardware.PCIE_HOP_LATENCY_S == 1.0e-6
    assert comms.NETWORK_HOP_LATENCY_S is hardware.NETWORK_HOP_LATENCY_S == 2.7e-6
    assert catalog.cluster("dgx-h100").inter_node.hop_latency_s == hardware.NETWORK_HOP_LATENCY_S


def test_nodes_scale_a_preset():
    c = catalog.cluster("DGX-H100", nodes=64)
    assert (c.nodes, c.num_gpus, c.id) == (64, 512, "dgx-h100")


@pytest.mark.parametrize("nodes", [0, -2, 1.5, True, "2"])
def test_bad_nodes_name_the_field(nodes):
    with pytest.raises(SpecError, match="nodes") as exc:
        catalog.cluster("dgx-h100", nodes=nodes)
    assert exc.value.field == "nodes"


def test_unknown_cluster_suggests():
    with pytest.raises(UnknownIdError, match="dgx-h100") as exc:
        catalog.cluster("dgx-h10")
    assert exc.value.kind == "cluster"


def test_bad_links_are_refused():
    with pytest.raises(SpecError, match="bus_efficiency"):
        Link("x", 1e9, Direction.UNIDIRECTIONAL, bus_efficiency=1.5)
    with pytest.raises(SpecError, match="bandwidth"):
        Link("x", 0.0, Direction.UNIDIRECTIONAL)
    with pytest.raises(SpecError, match="latency"):
        Link("x", 1e9, Direction.UNIDIRECTIONAL, latency_s=-1.0)


# placement


def test_strides_follow_the_placement_order():
    kw = dict(tp=8, cp=2, dp=4, pp=2, ep=2)
    assert group_stride("tp", **kw) == 1
    assert group_stride("cp", **kw) == 8
    assert group_stride("dp", **kw) == 16
    assert group_stride("ep", **kw) == 16
    assert group_stride("pp", **kw) == 64
    with pytest.raises(LayoutError, match="ep=3"):
        group_stride("ep", dp=4, ep=3)
    with pytest.raises(SpecError, match="dim"):
        group_stride("zz")


@pytest.mark.parametrize(
    ("gpn", "size", "stride", "world", "span"),
    [
        (8, 8, 1, 64, (1, 8)),  # tp=8 inside a node
        (8, 4, 2, 64, (1, 4)),  # aligned inside a node
        (8, 8, 8, 64, (8, 1)),  # dp behind tp=8: one rank per node
        (8, 32, 2, 64, (8, 4)),  # dp behind tp=2: four ranks on each of 8 nodes
        (8, 3, 1, 24, (2, 1)),  # groups of 3 straddle node boundaries
        (72, 72, 1, 144, (1, 72)),  # an NVL72 domain
    ],
)
def test_group_span(gpn, size, stride, world, span):
    assert group_span(gpn, size, stride, world) == span


def test_rings_use_one_nic_per_rank_on_the_node():
    c = catalog.cluster("dgx-h100", nodes=4)
    nic = c.inter_node.bus_bytes_per_s
    dp_all = comm_group(c, 32)
    assert dp_all.nodes == 4 and dp_all.inter_bytes_per_s == pytest.approx(8 * nic)
    # NVLink (0.82 x 450) caps the 8 NICs (8 x 47 GB/s)
    assert dp_all.bus_bytes_per_s == pytest.approx(min(c.intra_link.bus_bytes_per_s, 8 * nic))
    a2a = comm_group(c, 32, collective=Collective.ALL_TO_ALL)
    assert a2a.bus_bytes_per_s == pytest.approx(nic)
    dp = parallel_group(c, "dp", Collective.REDUCE_SCATTER, tp=8, dp=4)
    assert (dp.size, dp.nodes, dp.bus_bytes_per_s) == (4, 4, pytest.approx(nic))
    tp = parallel_group(c, "tp", Collective.ALL_REDUCE, tp=8, dp=4)
    assert tp.nodes == 1 and tp.bus_bytes_per_s == pytest.approx(0.82 * 450e9)
    assert (
        tp.hop_latency_s == hardware.NVLINK_HOP_LATENCY_S
        and dp.hop_latency_s == hardware.NETWORK_HOP_LATENCY_S
    )


def test_collective_time_on_a_preset():
    c = catalog.cluster("dgx-h100")
    t = collective_time("dp", Collective.ALL_REDUCE, 1e9, comm_group(c, 8)).value
    assert t == pytest.approx(2 * 7 / 8 * 1e9 / (0.82 * 450e9), rel=0.01)
    slow = catalog.cluster("pcie-8x-rtx-4090", nodes=2)
    assert collective_time("dp", Collective.ALL_REDUCE, 1e9, comm_group(slow, 16)).value > 50 * t


def test_groups_that_do_not_fit_are_refused():
    one = catalog.cluster("dgx-h100")
    with pytest.raises(SpecError, match="group size"):
        comm_group(one, 16)
    with pytest.raises(LayoutError, match="tp·cp·dp·pp"):
        parallel_group(one, "dp", Collective.ALL_REDUCE, tp=8, dp=2)
    bare = Cluster(accelerator=catalog.accelerator("h100"), gpus_per_node=8, nodes=2)
    with pytest.raises(SpecError, match="inter_node"):
        comm_group(bare, 16)
    assert comm_group(bare, 8).nodes == 1


# CLI


def test_clusters_command(capsys):
    assert main(["clusters"]) == 0
    out = capsys.readouterr().out
    assert "dgx-h100" in out and "gb200-nvl72" in out


def test_clusters_json_filtered_by_gpu(capsys):
    assert main(["clusters", "--gpu", "h100", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["clusters"]
    assert rows and {r["accelerator"] for r in rows} == {"h100-sxm-80gb"}
    assert rows[0]["inter_node"]["bus_bytes_per_s"] == pytest.approx(
        rows[0]["inter_node"]["one_way_bytes_per_s"] * rows[0]["inter_node"]["bus_efficiency"]
    )


def test_clusters_unknown_gpu_exits_2(capsys):
    assert main(["clusters", "--gpu", "h10"]) == 2
    assert "unknown gpu" in capsys.readouterr().err


# accelerators that published benchmarks run on, with their datasheet figures

PUBLISHED_GPUS = [  # id or alias, memory GB (10^9, at least), HBM TB/s, W, dense bf16 TFLOP/s
    ("h100-sxm", 80, 3.35, 700, 989.4),
    ("h100-nvl", 94, 3.9, 400, 835.5),
    ("h100-96gb-hbm2e", 96, 2.4, 500, 989.4),
    ("h20", 96, 4.0, 400, 148),
    ("h200", 141, 4.8, 700, 989.4),
    ("h200-nvl", 141, 4.8, 600, 835.5),
    ("b200", 180, 7.7, 1000, 2250),
    ("b300", 288, 8.0, 1100, 2250),
    ("gb200", 186, 8.0, 1200, 2500),
    ("gb300", 288, 8.0, 1400, 2500),
    ("mi300x", 192, 5.3, 750, 1307.4),
    ("mi325x", 256, 6.0, 1000, 1307.4),
]


@pytest.mark.parametrize(("ref", "gb", "tb_s", "watts", "bf16"), PUBLISHED_GPUS)
def test_published_accelerator_figures(ref, gb, tb_s, watts, bf16):
    acc = catalog.accelerator(ref)
    assert acc.memory_bytes >= gb * 1e9 * 0.99  # nvidia-smi totals sit a little under the nominal GB
    assert acc.memory_bandwidth_bytes_per_s == pytest.approx(tb_s * 1e12)
    assert acc.tdp_w == watts
    assert acc.peak_flops("bf16") == pytest.approx(bf16 * 1e12)
    assert acc.peak_flops("fp8") == pytest.approx(
        2 * acc.peak_flops("bf16"), rel=1e-3
    )  # halved sparse figures round
    assert acc.sources and acc.notes


def test_blackwell_ultra_trades_int8_and_fp64_for_fp4():
    b200, b300 = catalog.accelerator("b200"), catalog.accelerator("b300")
    assert b300.peak_flops("fp4") > b200.peak_flops("fp4")
    assert b300.peak_flops("int8") < b200.peak_flops("int8") and b300.peak_flops("fp64") < b200.peak_flops(
        "fp64"
    )


def test_every_preset_accelerator_and_rack_scale_domains():
    assert catalog.cluster("gb300-nvl72").accelerator.id == "gb300"
    assert catalog.cluster("gb300-nvl72").inter_node.one_way_bytes_per_s == 800e9 / 8
    assert catalog.cluster("grand-teton").accelerator.id == "h100-sxm-96gb-hbm2e"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accelerator": "h1000"}, "clusters.json bad-preset.accelerator"),
        ({"inter_node": "ib-zdr"}, "clusters.json bad-preset.inter_node"),
        ({"gpus_per_node": 0}, "gpus_per_node"),
    ],
)
def test_inconsistent_presets_name_the_field(monkeypatch, change, field):
    data = catalog._cluster_data()
    entry = {**data["clusters"][0], "id": "bad-preset", **change}
    monkeypatch.setattr(catalog, "_cluster_data", lambda: {**data, "clusters": [entry]})
    with pytest.raises(SpecError) as exc:
        catalog._preset("bad-preset")
    assert exc.value.field == field


def test_cluster_for_gpus():
    assert catalog.cluster_for_gpus("dgx-h100", 64).nodes == 8
    assert catalog.cluster_for_gpus("gb200-nvl72", 144).nodes == 2
    for bad in (12, 0, -8, 8.0):
        with pytest.raises(SpecError, match="multiple of the 8 GPUs per node") as exc:
            catalog.cluster_for_gpus("dgx-h100", bad)
        assert exc.value.field == "gpus"
