"""Typed model facts: adapters set every family-specific fact; formulas and estimate never look at a model type
or compare a tensor's name with a string. Tensor-parallel shards of the fused MQA projection, by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmplan.catalog import model_ids
from llmplan.formulas.model_states import rank_inventory
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.loading import load_model
from llmplan.specs.model import Group, NormKind, NormScope, Role, TpSplit

SRC = Path(__file__).resolve().parents[1] / "src" / "llmplan"
SCANNED = ("formulas", "estimate")
NAME_ATTRS = {"name", "leaf_name"}


def _string_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to a string or a collection of strings (tables of names)."""
    out = set()
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        value = getattr(node, "value", None)
        if value is None:
            continue
        strings = [n for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if strings and isinstance(value, (ast.Constant, ast.Set, ast.Tuple, ast.List, ast.Dict, ast.Call)):
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return out


def _names_model(node: ast.AST) -> bool:
    """`model` or `<x>.model`: the ModelSpec, whose `config` is the raw config.json."""
    return (isinstance(node, ast.Name) and node.id == "model") or (
        isinstance(node, ast.Attribute) and node.attr == "model"
    )


def _is_name_attr(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr in NAME_ATTRS for n in ast.walk(node))


def _is_literal(node: ast.AST, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_is_literal(e, constants) for e in node.elts)
    return isinstance(node, ast.Name) and node.id in constants


def violations(path: Path) -> list[str]:
    """Every place in `path` that reads a model type or compares a tensor name with a literal string."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _string_constants(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
        if (isinstance(node, ast.Attribute) and node.attr == "model_type") or (
            isinstance(node, ast.Name) and node.id == "model_type"
        ):
            found.append(f"{where} reads model_type")
        elif isinstance(node, ast.Attribute) and node.attr == "config" and _names_model(node.value):
            found.append(f"{where} reads the model's config.json by key")
        elif isinstance(node, ast.Attribute) and node.attr in ("linear_names", "hidden_act"):
            found.append(f"{where} looks a layer or an activation up by name ({node.attr})")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_name_attr(s) for s in sides) and any(_is_literal(s, constants) for s in sides):
                found.append(f"{where} compares a tensor name with a string")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in ("startswith", "endswith", "find", "index", "count") and _is_name_attr(
                node.func.value
            ):
                if any(_is_literal(a, constants) for a in node.args):
                    found.append(f"{where} matches a tensor name against a string")
    return found


def test_no_model_type_or_name_branches_in_formulas_and_estimate():
    files = [p for folder in SCANNED for p in sorted((SRC / folder).rglob("*.py"))]
    assert len(files) > 10
    found = [v for p in files for v in violations(p)]
    assert found == [], "\n".join(found)


def test_the_scan_catches_each_pattern(tmp_path):
    """The rule is live: each forbidden pattern in a scratch module is reported."""
    bad = SRC / "formulas" / "_scratch_rule_check.py"
    bad.write_text(
        'KV = ("k_proj", "v_proj")\n'
        "def f(model, lin, t):\n"
        '    a = model.model_type == "gemma2"\n'
        "    b = lin.leaf_name in KV\n"
        '    c = "norm" in t.name\n'
        '    d = t.name.endswith(("q_norm.weight",))\n'
        '    e = model.config.get("attn_logit_softcapping")\n'
        '    f = "gate_up_proj" in model.linear_names()\n'
        "    return a, b, c, d, e, f\n"
    )
    try:
        assert len(violations(bad)) == 6
    finally:
        bad.unlink()


@pytest.mark.parametrize(
    ("tp", "columns"),
    [
        # hand count: 48 query heads / tp of 128, plus the one key and one value head, whole on every rank
        (1, 48 * 128 + 128 + 128),  # 6400
        (2, 24 * 128 + 128 + 128),  # 3328
        (4, 12 * 128 + 128 + 128),  # 1792 (an even split would give 1600)
        (8, 6 * 128 + 128 + 128),  # 1024
    ],
)
def test_fused_mqa_qkv_keeps_whole_kv_heads(tp, columns):
    model = load_model("starcoder")  # GPT-BigCode MQA: n_embd 6144, 48 heads of 128, one kv head
    c_attn = next(lin for lin in model.layers[0].linears if lin.name == "attn.c_attn")
    assert c_attn.role is Role.QKV and c_attn.out_features == 6400
    assert shard_linear(c_attn, model, tp) == (6144, columns)
    # the whole rank: c_attn (+ its split bias), c_proj (row: in / tp, bias whole), c_fc, mlp.c_proj, ln_1, ln_2
    h, inner = 6144, 24576
    per_layer = (
        h * columns
        + columns
        + (h // tp) * h
        + h
        + h * (inner // tp)
        + inner // tp
        + (inner // tp) * h
        + h
        + 4 * h
    )
    pp = model.num_hidden_layers
    inv = rank_inventory(model, tp, 1, pp, 1)  # one layer per stage, a middle stage: that layer only
    assert inv.dense == per_layer


def test_separate_kv_projections_replicate_past_the_kv_heads():
    model = load_model("llama-3-8b")  # 8 kv heads of 128
    k = next(lin for lin in model.layers[0].linears if lin.role is Role.K)
    assert [shard_linear(k, model, tp)[1] for tp in (1, 2, 4, 8, 16)] == [1024, 512, 256, 128, 128]


def test_every_linear_has_a_role_and_every_norm_a_kind():
    """Over the catalog: roles agree with the TP split, norms carry their kind (Gemma's own RMSNorm)."""
    column = {Role.Q, Role.K, Role.V, Role.QKV, Role.GATE, Role.UP, Role.GATE_UP, Role.Q_UP, Role.KV_UP}
    for name in model_ids():
        model = load_model(name)
        for block in model.block_kinds:
            for lin in block.linears:
                if lin.role in column:
                    assert lin.tp is TpSplit.COLUMN, (name, lin.name)
                elif lin.role in (Role.OUT, Role.DOWN):
                    assert lin.tp is TpSplit.ROW, (name, lin.name)
                else:
                    assert lin.tp is TpSplit.REPLICATED, (name, lin.name)
            for t in block.tensors:
                if t.group is Group.NORM:
                    assert t.norm is not None, (name, t.name)
        assert model.lm_head.role is Role.LM_HEAD
    gemma = load_model("gemma-2-9b")
    assert {t.norm for b in gemma.layers for t in b.tensors} == {NormKind.RMS_GEMMA}
    assert gemma.attn_logit_softcap == 50.0 and gemma.final_logit_softcap == 30.0
    qwen3 = load_model("qwen3-8b")
    scopes = {t.norm_scope for t in qwen3.layers[0].tensors}
    assert scopes == {NormScope.HIDDEN, NormScope.Q_HEADS, NormScope.K_HEADS}


def test_no_module_over_400_lines():
    """The codebase rule: every module under src/ stays under 400 lines (split by topic instead)."""
    long = [
        f"{p.relative_to(SRC)}: {n}"
        for p in sorted(SRC.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 400
    ]
    assert long == []
