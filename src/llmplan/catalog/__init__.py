"""The catalogs: model configs (`catalog/models/<id>.json`), accelerators (`catalog/accelerators.json`) and cluster
presets (`catalog/clusters.json`).

Each entry carries its source and the date it was read. Files are read lazily: looking up one model reads one
file, so the CLI answers fast.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from llmplan.errors import SpecError, UnknownIdError
from llmplan.specs.hardware import Accelerator, Cluster, Direction, Link, LinkKind, Price

_ROOT = resources.files("llmplan.catalog")


@dataclass(frozen=True, kw_only=True, slots=True)
class CatalogModel:
    """A model config as published, with where it came from."""

    id: str
    name: str
    family: str
    hub_id: str | None
    source: str
    read_on: str
    config: dict[str, Any] = field(hash=False, compare=False, repr=False)
    published_params: int | None = None
    published_params_source: str | None = None
    notes: str = ""


def suggest(given: str, choices: list[str], n: int = 3) -> list[str]:
    """The closest ids to a mistyped one (difflib ratio >= 0.5), best first."""
    return difflib.get_close_matches(given.lower(), choices, n=n, cutoff=0.5)


@cache
def model_ids() -> list[str]:
    return sorted(
        p.name[: -len(".json")] for p in _ROOT.joinpath("models").iterdir() if p.name.endswith(".json")
    )


def _entry(data: dict[str, Any]) -> CatalogModel:
    published = data.get("published_params") or {}
    return CatalogModel(
        id=data["id"],
        name=data["name"],
        family=data["family"],
        hub_id=data.get("hub_id"),
        source=data["source"],
        read_on=data["read_on"],
        config=data["config"],
        published_params=published.get("value"),
        published_params_source=published.get("source"),
        notes=data.get("notes", ""),
    )


@cache
def model_entry(model_id: str) -> CatalogModel:
    """The catalog entry `model_id` (case-insensitive); UnknownIdError with the closest ids otherwise."""
    key = model_id.lower()
    path = _ROOT.joinpath("models", f"{key}.json")
    if not path.is_file():
        raise UnknownIdError("model", model_id, suggest(key, model_ids()))
    return _entry(json.loads(path.read_text(encoding="utf-8")))


def model_entries() -> list[CatalogModel]:
    return [model_entry(i) for i in model_ids()]


def is_model_id(ref: str) -> bool:
    return ref.lower() in model_ids()


def find_by_hub_id(hub_id: str) -> CatalogModel | None:
    """The catalog entry published under this hub id (case-insensitive), so known models need no network."""
    key = hub_id.lower()
    for entry in model_entries():
        if entry.hub_id and entry.hub_id.lower() == key:
            return entry
    return None


def _link(data: dict[str, Any] | None) -> Link | None:
    if not data:
        return None
    latency = data.get("latency_s")
    return Link(
        data["name"],
        float(data["bandwidth_bytes_per_s"]),
        Direction(data["direction"]),
        kind=LinkKind(data["kind"]),
        latency_s=None if latency is None else float(latency),
        bus_efficiency=float(data["bus_efficiency"]),
        source=data.get("bus_efficiency_source", ""),
    )


def _accelerator(data: dict[str, Any]) -> Accelerator:
    links = data.get("interconnect") or {}
    price = data.get("price_usd_per_gpu_hour")
    return Accelerator(
        id=data["id"],
        name=data["name"],
        vendor=data["vendor"],
        architecture=data.get("architecture", ""),
        compute_capability=data.get("compute_capability"),
        memory_bytes=int(data["memory_bytes"]),
        memory_type=data.get("memory_type", ""),
        memory_bandwidth_bytes_per_s=float(data["memory_bandwidth_bytes_per_s"]),
        peak_flops_per_s={k: float(v) for k, v in data["peak_flops_per_s"].items() if v is not None},
        intra_node=_link(links.get("intra_node")),
        host=_link(links.get("host")),
        tdp_w=data.get("tdp_w"),
        price=Price(float(price["value"]), price["source"], price["date"]) if price else None,
        aliases=tuple(data.get("aliases", ())),
        sources=tuple(data.get("sources", ())),
        read_on=data.get("read_on", ""),
        notes=data.get("notes", ""),
    )


@cache
def accelerators() -> tuple[Accelerator, ...]:
    data = json.loads(_ROOT.joinpath("accelerators.json").read_text(encoding="utf-8"))
    return tuple(_accelerator(a) for a in data["accelerators"])


@cache
def _accelerator_index() -> dict[str, Accelerator]:
    index: dict[str, Accelerator] = {}
    for acc in accelerators():
        for key in (acc.id, *acc.aliases):
            index[key.lower()] = acc
    return index


def accelerator(ref: str) -> Accelerator:
    """The accelerator with this id or alias (case-insensitive); UnknownIdError with the closest otherwise."""
    index = _accelerator_index()
    found = index.get(ref.lower().strip())
    if found is None:
        raise UnknownIdError("gpu", ref, suggest(ref, sorted(index)))
    return found


@cache
def _cluster_data() -> dict[str, Any]:
    return json.loads(_ROOT.joinpath("clusters.json").read_text(encoding="utf-8"))


def _preset_link(preset: str, role: str, link_id: str | None) -> Link | None:
    if link_id is None:
        return None
    links = _cluster_data()["links"]
    if link_id not in links:
        raise SpecError(
            f"clusters.json {preset}.{role}", f"names no link {link_id!r} (allowed: {', '.join(links)})"
        )
    return _link(links[link_id])


@cache
def _preset(preset_id: str) -> Cluster:
    data = next(c for c in _cluster_data()["clusters"] if c["id"] == preset_id)
    try:
        acc = accelerator(data["accelerator"])
    except UnknownIdError as exc:
        raise SpecError(f"clusters.json {preset_id}.accelerator", str(exc)) from None
    cluster = Cluster(
        accelerator=acc,
        gpus_per_node=data["gpus_per_node"],
        nodes=1,
        inter_node=_preset_link(preset_id, "inter_node", data.get("inter_node")),
        intra_node=_preset_link(preset_id, "intra_node", data.get("intra_node")),
        id=preset_id,
        name=data["name"],
        sources=tuple(data.get("sources", ())),
        notes=data.get("notes", ""),
    )
    if cluster.intra_link is None and cluster.gpus_per_node > 1:
        raise SpecError(f"clusters.json {preset_id}.intra_node", f"{acc.id} has no intra-node link; name one")
    return cluster


@cache
def _cluster_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in _cluster_data()["clusters"]:
        for key in (entry["id"], *entry.get("aliases", ())):
            index[key.lower()] = entry["id"]
    return index


def cluster_ids() -> list[str]:
    return [c["id"] for c in _cluster_data()["clusters"]]


def clusters() -> tuple[Cluster, ...]:
    """Every cluster preset, one node each (catalog order)."""
    return tuple(_preset(i) for i in cluster_ids())


def cluster_aliases(preset_id: str) -> tuple[str, ...]:
    entry = next(c for c in _cluster_data()["clusters"] if c["id"] == preset_id)
    return tuple(entry.get("aliases", ()))


def cluster(ref: str, nodes: int = 1) -> Cluster:
    """The cluster preset with this id or alias (case-insensitive) scaled to `nodes` nodes.

    UnknownIdError with the closest ids for an unknown preset; SpecError("nodes") for nodes that are not an
    integer >= 1, or above 1 on a preset without a network.
    """
    index = _cluster_index()
    found = index.get(ref.lower().strip())
    if found is None:
        raise UnknownIdError("cluster", ref, suggest(ref, sorted(index)))
    preset = _preset(found)
    if nodes == 1 and type(nodes) is int:
        return preset
    cluster = replace(preset, nodes=nodes)  # validates nodes
    if cluster.nodes > 1 and cluster.inter_node is None:
        raise SpecError("nodes", f"{nodes} nodes of {found}, which has no network between nodes (allowed: 1)")
    return cluster


def cluster_for_gpus(ref: str, gpus: int) -> Cluster:
    """The preset `ref` with as many nodes as `gpus` needs; SpecError("gpus") unless gpus is a positive multiple
    of the preset's GPUs per node."""
    preset = cluster(ref)
    per_node = preset.gpus_per_node
    if type(gpus) is not int or gpus < 1 or gpus % per_node:
        raise SpecError(
            "gpus",
            f"{gpus!r} is not a multiple of the {per_node} GPUs per node of {preset.id} (allowed: {per_node}·k)",
        )
    return cluster(ref, nodes=gpus // per_node)
