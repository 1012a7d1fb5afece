"""The catalogs are data with provenance: every entry parses, names its source and date, and ids are unique."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.formulas.params import count_params

MODEL_FILES = sorted(p for p in resources.files("llmplan.catalog").joinpath("models").iterdir() if p.name.endswith(".json"))

SEED_GPUS = [  # accelerators the seeds name (shared/seeds), by a name a user would type
    "a100-40gb", "a100-80gb", "a800", "h100-sxm", "h100-pcie", "h800", "a30", "a40", "v100", "p100",
    "rtx-3090", "rtx-4090", "rtx-6000", "rtx-8000", "l4", "l40", "gh200", "mi300x", "ascend-910", "ascend-910b",
    "ascend-310", "h200", "b200", "l40s", "a10g", "t4", "mi325x",
]


def test_catalog_has_at_least_50_models():
    assert len(MODEL_FILES) >= 50


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.name for p in MODEL_FILES])
def test_model_entry_is_complete_and_parses(path):
    data = json.loads(path.read_text())
    assert data["id"] == path.name[: -len(".json")]
    for key in ("name", "family", "source", "read_on", "config"):
        assert data[key], key
    spec = parse_config(data["config"], data["id"])
    assert count_params(spec).total > 0


def test_accelerators_have_provenance_and_unique_names():
    accs = catalog.accelerators()
    assert len(accs) >= 30
    names = [n.lower() for a in accs for n in (a.id, *a.aliases)]
    assert len(names) == len(set(names))
    for a in accs:
        assert a.memory_bytes > 0 and a.memory_bandwidth_bytes_per_s > 0
        assert a.sources and a.read_on
        assert a.peak_flops_per_s, a.id


@pytest.mark.parametrize("name", SEED_GPUS)
def test_every_seed_gpu_is_in_the_catalog(name):
    assert catalog.accelerator(name).memory_bytes > 0


def test_fp8_only_where_the_hardware_has_it():
    assert not catalog.accelerator("v100").supports("fp8")
    assert not catalog.accelerator("a100-80gb").supports("fp8")
    assert catalog.accelerator("h100-sxm").supports("fp8")
