"""The catalogs: model configs (`catalog/models/<id>.json`) and accelerators (`catalog/accelerators.json`).

Each entry carries its source and the date it was read. Files are read lazily: looking up one model reads one
file, so the CLI answers fast.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from llmplan.errors import UnknownIdError
from llmplan.specs.hardware import Accelerator, Direction, Link, Price

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
    return sorted(p.name[: -len(".json")] for p in _ROOT.joinpath("models").iterdir() if p.name.endswith(".json"))


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
    return Link(data["name"], float(data["bandwidth_bytes_per_s"]), Direction(data["direction"]))


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
