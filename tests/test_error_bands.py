"""Error bands (issue 15 item 7): the shipped bands are what the validation results give, every estimate
carries its class's band, and the verdict uses it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.estimate.error_bands import MIN_ROWS, JobClass, band_for, job_class
from llmplan.limits import tight_headroom
from llmplan.specs.training import Layout, Method, OffloadTarget, TrainingJob
from llmplan.validate import bands

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def test_shipped_bands_are_current() -> None:
    """error_bands.json is what benchmarks/results/validation.json gives (rerun benchmarks/validate_all.py)."""
    results = json.loads((ROOT / "benchmarks" / "results" / "validation.json").read_text(encoding="utf-8"))
    shipped = json.loads((ROOT / "src" / "llmplan" / "catalog" / "error_bands.json").read_text(encoding="utf-8"))
    assert shipped == bands.document(bands.rows_from_results(results))
    assert shipped["bands"]["all"]["n"] == len(bands.rows_from_results(results)) > 0


def test_classes() -> None:
    assert job_class(None) is JobClass.INFERENCE
    assert job_class(TrainingJob()) is JobClass.FULL
    assert job_class(TrainingJob(method=Method.LORA)) is JobClass.LORA
    assert job_class(TrainingJob(method=Method.QLORA)) is JobClass.QLORA
    assert job_class(TrainingJob(activation_offload=True)) is JobClass.OFFLOAD
    offload = Layout(zero=2, offload_optimizer=OffloadTarget.CPU)
    assert job_class(TrainingJob(method=Method.LORA), offload) is JobClass.OFFLOAD


def test_band_falls_back_to_wider_groups() -> None:
    for cls in JobClass:
        band = band_for(cls, "device")
        assert band is not None and band.p90_pct > 0
        assert band.n >= MIN_ROWS or band.group == "all"


def test_tight_when_headroom_is_under_the_band() -> None:
    assert tight_headroom(10 * GIB, 80 * GIB) is None
    assert "expected error" in tight_headroom(10 * GIB, 80 * GIB, band_bytes=11 * GIB)
    assert tight_headroom(-1, 80 * GIB, band_bytes=11 * GIB) is None


def test_cli_shows_the_band_in_text_json_and_explain() -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["train", "llama-2-7b", "--method", "lora", "--explain"])
    assert text.exit_code == 0, text.output
    assert "expect ±" in text.output and "measured jobs like this" in text.output
    assert "error_band" in text.output
    out = runner.invoke(app, ["train", "llama-2-7b", "--method", "lora", "--json"])
    band = json.loads(out.output)["error_band"]
    assert band["group"].startswith("lora") and band["low_bytes"] < band["high_bytes"]
    # LoRA 7B with 5 % < headroom < its band: the band makes it "fits, but tight"
    args = ["train", "llama-2-7b", "--method", "lora", "--seq-len", "2688", "--micro-batch", "4", "--json"]
    doc = json.loads(runner.invoke(app, args).output)
    width = doc["error_band"]["term"]["value"]
    assert doc["fits"] and 0.05 * doc["capacity_bytes"] < doc["headroom_bytes"] < width
    assert any("expected error" in w for w in doc["warnings"])
