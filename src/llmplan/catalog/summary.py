"""The model catalog as typed rows: each model's exact parameter counts and shape, for `llmplan models` and
the web page (formatting stays in cli/ and web/)."""

from __future__ import annotations

from dataclasses import dataclass

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.formulas.params import count_params


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One catalog model: where its config came from and its exact parameter counts (formulas/params.py)."""

    id: str
    name: str
    family: str
    model_type: str
    hub_id: str
    params: int
    active_params: int
    """Parameters one token passes through (= params for dense models)."""
    is_moe: bool
    layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    source: str
    read_on: str

    @property
    def total(self) -> int:
        return self.params


def catalog_models(
    family: str | None = None, min_b: float | None = None, max_b: float | None = None
) -> tuple[ModelSummary, ...]:
    """The catalog's models of `family` (a substring of the family or id) with min_b <= params / 1e9 <= max_b
    (the bounds are checked by the caller, `llmplan.limits`)."""
    rows = []
    for entry in catalog.model_entries():
        if family and family.lower() not in entry.family.lower() and family.lower() not in entry.id:
            continue
        spec = parse_config(entry.config, entry.id)
        counts = count_params(spec)
        size_b = counts.total / 1e9
        if (min_b is not None and size_b < min_b) or (max_b is not None and size_b > max_b):
            continue
        rows.append(
            ModelSummary(
                id=entry.id,
                name=entry.name,
                family=entry.family,
                model_type=spec.model_type,
                hub_id=entry.hub_id,
                params=counts.total,
                active_params=counts.active_per_token,
                is_moe=spec.is_moe,
                layers=spec.num_hidden_layers,
                hidden_size=spec.hidden_size,
                num_attention_heads=spec.num_attention_heads,
                num_key_value_heads=spec.num_key_value_heads,
                max_position_embeddings=spec.max_position_embeddings,
                source=entry.source,
                read_on=entry.read_on,
            )
        )
    return tuple(rows)
