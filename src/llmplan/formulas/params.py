"""Parameter counts, exact to the parameter, from a ModelSpec's tensor inventory.

The count is a sum over the inventory (no closed form such as 12·L·h² is used): every linear layer contributes
in·out (+ out for its bias) per stored copy, every other tensor its numel, a tied head nothing. Checked in the
test suite against `sum(p.numel() for p in model.parameters())` of the transformers model built on the meta
device from the same config.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from llmplan.specs.model import Group, ModelSpec


@dataclass(frozen=True, slots=True)
class ParamBreakdown:
    """Parameters per component. `biases` is informational: the biases are already inside the components."""

    embedding: int
    position: int
    attention: int
    mlp: int
    routed_experts: int
    shared_experts: int
    router: int
    norm: int
    lm_head: int
    biases: int
    active_per_token: int
    """Parameters a token passes through: all dense ones plus top-k routed experts (equal to total for dense
    models). Embedding rows are counted whole, as in the DeepSeek-V3 and Mixtral model cards."""

    @property
    def total(self) -> int:
        return (
            self.embedding
            + self.position
            + self.attention
            + self.mlp
            + self.routed_experts
            + self.shared_experts
            + self.router
            + self.norm
            + self.lm_head
        )

    @property
    def non_embedding(self) -> int:
        """Total less token and position embeddings (Kaplan et al. 2020's N); a tied head counts as embedding."""
        return self.total - self.embedding - self.position

    def components(self) -> dict[str, int]:
        """Component name -> parameters, in display order (for tables; `biases` and `active` left out)."""
        skip = {"biases", "active_per_token"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


_COUNTED: dict[int, tuple[ModelSpec, ParamBreakdown]] = {}
_COUNTED_MAX = 256


def count_params(model: ModelSpec) -> ParamBreakdown:
    """Count every parameter of `model` by component.

    Formula: sum over linear layers of copies·(in·out + out·[bias]) + sum of other tensors' numel, with the
    head counted only when `tie_word_embeddings` is false. Remembered per model object (specs are frozen; a
    layout search validates thousands of layouts of one model).
    """
    hit = _COUNTED.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_COUNTED) >= _COUNTED_MAX:
        _COUNTED.clear()
    counted = _count(model)
    _COUNTED[id(model)] = (model, counted)
    return counted


def _count(model: ModelSpec) -> ParamBreakdown:
    by_group = {g: 0 for g in Group}
    biases = 0
    active = 0
    for tensor in (*model.embedding, *model.final):
        by_group[tensor.group] += tensor.numel
        biases += tensor.numel if tensor.is_bias else 0
        active += tensor.numel
    for block in model.layers:
        for tensor in block.tensors:
            by_group[tensor.group] += tensor.numel
            biases += tensor.numel if tensor.is_bias else 0
            active += tensor.numel
        for linear in block.linears:
            by_group[linear.group] += linear.numel
            biases += linear.bias_numel
            active += linear.active_numel
    for linear in model.final_linears:
        by_group[linear.group] += linear.numel
        biases += linear.bias_numel
        active += linear.active_numel
    head = model.lm_head_numel
    by_group[Group.LM_HEAD] += head
    biases += model.lm_head.bias_numel if model.lm_head.bias else 0
    active += head
    return ParamBreakdown(
        embedding=by_group[Group.EMBEDDING],
        position=by_group[Group.POSITION],
        attention=by_group[Group.ATTENTION],
        mlp=by_group[Group.MLP],
        routed_experts=by_group[Group.ROUTED_EXPERTS],
        shared_experts=by_group[Group.SHARED_EXPERTS],
        router=by_group[Group.ROUTER],
        norm=by_group[Group.NORM],
        lm_head=by_group[Group.LM_HEAD],
        biases=biases,
        active_per_token=active,
    )
