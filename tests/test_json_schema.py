"""Every `--json` output is versioned, strict JSON (no NaN / Infinity) that validates against its pydantic
model (llmplan.schema); the memory and time records are the estimate's own Terms; one name per option."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import typer

from llmplan import schema
from llmplan.cli import app, main

COMMANDS = [
    (["train", "llama-2-7b", "--method", "lora", "--gpus", "8", "--zero", "3"], schema.TrainOut),
    (["serve", "llama-3-8b", "--engine", "vllm", "--tp", "2"], schema.ServeOut),
    (
        ["serve", "llama-3-8b", "--input-len", "256", "--output-len", "32", "--concurrency", "8"],
        schema.ServeLoadOut,
    ),
    (["params", "llama-2-7b"], schema.ParamsOut),
    (["models", "--family", "qwen"], schema.ModelsOut),
    (["gpus"], schema.GpusOut),
    (["clusters", "--gpu", "h100"], schema.ClustersOut),
    (["formats", "1e6"], schema.FormatsOut),
]


def _strict(text: str) -> dict:
    def refuse(token: str) -> float:
        raise AssertionError(f"non-finite number {token} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("args", "model"), COMMANDS, ids=[c[1].__name__ for c in COMMANDS])
def test_json_is_versioned_strict_and_validates(
    capsys, args: list[str], model: type[schema.Envelope]
) -> None:
    assert main([*args, "--json"]) == 0
    data = _strict(capsys.readouterr().out)
    assert data["schema_version"] == schema.SCHEMA_VERSION and data["command"] == args[0]
    assert model.model_validate(data).command == args[0]


def test_non_finite_values_are_strings(capsys) -> None:
    """fp16 cannot hold 1e6: it overflows to inf, fp8-e4m3fn to nan; both are written as strings."""
    assert main(["formats", "1e6", "--json"]) == 0
    rows = {r["format"]: r for r in _strict(capsys.readouterr().out)["encodings"]}
    assert rows["fp16"]["stored"] == "inf"
    assert "nan" in {r["stored"] for r in rows.values()}


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="extra"):
        schema.TermOut.model_validate({"name": "weights", "value": 1, "unit": "bytes", "colour": "red"})


def test_train_json_terms_are_the_estimate_records(capsys) -> None:
    """The JSON's memory terms carry formula and source, add up to the device counter, and equal --explain."""
    assert main(["train", "llama-2-7b", "--json"]) == 0
    data = _strict(capsys.readouterr().out)
    terms = data["memory"]["terms"]
    assert sum(t["value"] for t in terms) == data["memory"]["total"] == data["device_bytes"]
    assert all(t["formula"] and t["source"] for t in terms)
    assert main(["train", "llama-2-7b", "--explain"]) == 0
    out = capsys.readouterr().out
    for t in terms:
        assert f"{t['name']} = {t['value']:,} B" in out
        assert t["formula"] in out.replace("\n", "")


def test_serve_json_terms_add_up_to_the_device_counter(capsys) -> None:
    assert main(["serve", "llama-2-7b", "--json"]) == 0
    data = _strict(capsys.readouterr().out)
    assert sum(t["value"] for t in data["memory"]["terms"]) == data["device_bytes"]
    assert {t["name"] for t in data["speed"]} == {"ttft", "tpot"}


RENAMED = {"json_out", "cluster_id", "from_file", "emit_target"}
"""Parameters whose plain name is taken by a local (json, cluster) or a keyword (from), or would clash with the
`emit` command's target argument; their flags are --json, --cluster, --from and --emit."""


def test_one_name_per_option_across_commands() -> None:
    """The same parameter has the same flags in every command, a flag always sets the same parameter, and a
    parameter's first flag is its own name (num_virtual_tokens -> --num-virtual-tokens)."""
    command = typer.main.get_command(app)
    flags, params = defaultdict(set), defaultdict(set)
    for sub in command.commands.values():  # type: ignore[attr-defined]
        for p in sub.params:
            if not p.opts[0].startswith("--"):
                continue
            flags[p.name].add(tuple(p.opts))
            for opt in p.opts:
                params[opt].add(p.name)
            if p.name not in RENAMED:
                assert p.opts[0] == "--" + p.name.replace("_", "-"), (sub.name, p.name, p.opts)
    assert {n: f for n, f in flags.items() if len(f) > 1} == {}
    assert {o: n for o, n in params.items() if len(n) > 1} == {}


def test_docs_json_lists_every_field_and_term_name() -> None:
    from pathlib import Path

    from llmplan import breakdown

    page = (Path(__file__).parent.parent / "docs" / "json.md").read_text(encoding="utf-8")
    for model in (schema.TrainOut, schema.ServeOut):
        missing = [f for f in model.model_fields if f"`{f}`" not in page]
        assert not missing, (model.__name__, missing)
    names = [v for k, v in vars(breakdown).items() if k.isupper() and isinstance(v, str)]
    assert names and all(f"`{n}`" in page for n in names)
