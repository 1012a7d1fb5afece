"""The accuracy machinery: the measured-case mapping, units, error statistics, the peers, and the CI gate of
issue 4 (the fast trace subset within issue 3's tolerances)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplan.errors import SpecError
from llmplan.formulas.params import count_params
from llmplan.loading import load_model
from llmplan.specs.training import Layout
from llmplan.validate import peers
from llmplan.validate.measured import CaseStatus, Counter, Scope, load_cases, to_bytes
from llmplan.validate.stats import ErrorStats, error_pct, percentile
from llmplan.validate.trace_matrix import ARCHS, CASES, FAST, arch_model

MEASURED = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured.jsonl"
MEMORY_METRICS = {
    "peak_mem_gb",
    "peak_mem_gib",
    "mem_per_gpu_gib",
    "mem_per_gpu_gb",
    "gpu_mem_used_mib",
    "mem_total_gb",
    "weights_mem_gb_total",
    "max_batch_per_gpu_fits",
    "oom",
    "max_model_fits",
    "mem_estimate_gb",
    "fits_in_gb",
    "model_mem_gb",
}


def test_mapping_covers_every_memory_row() -> None:
    if not MEASURED.is_file():
        pytest.skip("shared/data/measured.jsonl is not next to the repository")
    rows = [json.loads(line) for line in MEASURED.read_text(encoding="utf-8").splitlines() if line.strip()]
    memory = {r["id"]: r for r in rows if r["metric"] in MEMORY_METRICS}
    cases = {c.row: c for c in load_cases()}
    assert set(cases) == set(memory)
    for row_id, case in cases.items():
        row = memory[row_id]
        if case.value is not None:
            assert case.value == pytest.approx(float(str(row["value"]).split("-")[0])), row_id
        if row["measured_or_estimated"] == "estimated":
            assert case.status is CaseStatus.RULE_OF_THUMB, row_id


def test_every_case_builds_valid_specs_or_says_why() -> None:
    for case in load_cases():
        if case.status in (CaseStatus.STATS, CaseStatus.VERDICT):
            assert case.computable, case.row
            assert case.counter is not None and case.gpu is not None, case.row
            assert case.assumptions, case.row
        if case.computable:
            model = load_model(case.model_id or "")
            assert count_params(model).total > 0
            assert (case.training is None) != (case.inference is None)
            if case.status is CaseStatus.STATS:
                assert case.measured_bytes and case.measured_bytes > 0
        else:
            assert case.reason, case.row


def test_counters_and_scopes_are_those_of_the_rows() -> None:
    cases = {c.row: c for c in load_cases()}
    assert cases["peft-metamath-full-finetuning-mem"].counter is Counter.RESERVED
    assert cases["hfblog-octocoder-bf16-short"].counter is Counter.ALLOCATED
    assert cases["peftdoc-llama2-70b-lora-zero3-8xh100"].counter is Counter.DEVICE
    assert cases["accelerate-bmi-gptj6b-fp32-mem"].scope is Scope.WHOLE_MODEL
    assert "dynamic-padding" in cases["peft-metamath-lora-rank32-mem"].flags


def test_unit_conversions() -> None:
    assert to_bytes(1, "GB") == 10**9
    assert to_bytes(1, "GiB") == 2**30
    assert to_bytes(14949, "MiB") == 14949 * 2**20
    with pytest.raises(SpecError, match="unit"):
        to_bytes(1, "gigabytes")
    cases = {c.row: c for c in load_cases()}
    total = cases["qwen1-7b-full-parameter-seq256-mem"]
    assert total.divide_by == 2 and total.measured_bytes == 69_600_000_000
    assert cases["peft-metamath-full-finetuning-mem"].measured_bytes == round(36.2 * 2**30)


def test_error_statistics() -> None:
    assert error_pct(110, 100) == pytest.approx(10.0)
    assert error_pct(90, 100) == pytest.approx(-10.0)
    with pytest.raises(SpecError):
        error_pct(1, 0)
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(11)), 90) == pytest.approx(9.0)
    assert percentile([5.0], 90) == 5.0
    stats = ErrorStats.of([-30.0, 5.0, 1.0, -2.0, 10.0])
    assert stats is not None
    assert (stats.n, stats.median_abs_pct, stats.max_abs_pct, stats.median_signed_pct) == (5, 5.0, 30.0, 1.0)
    assert stats.p90_abs_pct == pytest.approx(22.0)
    assert not stats.meets_measured() and ErrorStats.of([]) is None
    assert ErrorStats.of([1.0, -2.5, 7.9]).meets_trace()


def test_deepspeed_and_accelerate_rules() -> None:
    cases = {c.row: c for c in load_cases()}
    case = cases["peft-metamath-full-finetuning-mem"]
    model = load_model("llama-3.2-3b")
    n = count_params(model).total
    # ZeRO-2 formula over one GPU: 2 + 18 bytes per parameter (stage_1_and_2.py)
    assert peers.deepspeed_model_states(model, case).bytes == 2 * n + 18 * n
    # accelerate: 4 x the bf16 size for Adam
    assert peers.accelerate_rule(model, case).bytes == 8 * n
    # the largest module of a tied Llama is its embedding table
    assert peers.largest_module_params(model) == model.vocab_size * model.hidden_size


def test_matrix_shape() -> None:
    assert len(CASES) >= 60 and 8 <= len(FAST) <= 15
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.arch for c in CASES} >= set(ARCHS)
    assert any(arch_model(a).moe for a in ARCHS)
    assert any(arch_model(a).num_key_value_heads < arch_model(a).num_attention_heads for a in ARCHS)
    methods = {c.training.method.value for c in CASES if c.training}
    assert {"full", "lora", "qlora", "prefix", "prompt"} <= methods
    seqs = {c.training.seq_len for c in CASES if c.training}
    assert min(seqs) == 512 and max(seqs) == 8192
    assert any(c.inference for c in CASES)
    assert Layout().num_gpus == 1


@pytest.mark.trace
def test_fast_trace_subset_meets_tolerance() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("llmplan.estimate.training")
    from llmplan.validate.trace_matrix import run_matrix

    results = run_matrix(FAST)
    missing = [(c.case.id, c.error) for c in results if c.error_pct is None]
    assert not missing
    stats = ErrorStats.of([c.error_pct for c in results if c.error_pct is not None])
    assert stats is not None
    worst = max(results, key=lambda c: abs(c.error_pct or 0))
    assert stats.meets_trace(), (stats, worst.case.id, worst.error_pct)


@pytest.mark.parametrize(
    ("model_id", "published", "tolerance"),
    [
        ("qwen-1.8b", 1.84e9, 0.01),
        ("qwen-7b", 7.72e9, 0.005),
        ("qwen-14b", 14.2e9, 0.01),
        ("qwen-72b", 72.3e9, 0.005),
        ("starcoder", 15.5e9, 0.005),
    ],
)
def test_qwen_and_starcoder_counts_match_published(model_id: str, published: float, tolerance: float) -> None:
    """Qwen technical report / model cards (1.8B, 7.7B, 14B, 72B); StarCoder paper (15.5B, tied head)."""
    assert count_params(load_model(model_id)).total == pytest.approx(published, rel=tolerance)


@pytest.mark.trace
def test_gpt_bigcode_adapter_matches_transformers() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = {
        "model_type": "gpt_bigcode",
        "n_embd": 256,
        "n_head": 8,
        "n_layer": 2,
        "n_inner": 1024,
        "n_positions": 512,
        "vocab_size": 1000,
        "multi_query": True,
    }
    from llmplan.adapters import parse_config

    spec = parse_config(config, "inline")
    hf_config = transformers.GPTBigCodeConfig(**{k: v for k, v in config.items() if k != "model_type"})
    with torch.device("meta"):
        model = transformers.GPTBigCodeForCausalLM(hf_config)
    assert count_params(spec).total == sum(p.numel() for p in model.parameters())
    assert spec.num_key_value_heads == 1 and spec.native_transformers


def test_report_renders_every_section_without_torch() -> None:
    from llmplan.validate import compare, report
    from llmplan.validate.trace_matrix import TraceComparison

    cases = [c for c in load_cases() if c.row.startswith(("hfblog", "peft-readme", "llamafactory", "dschat"))]
    comps = compare.compare_measured(cases, peers=False)
    trace = [TraceComparison(CASES[0], 110, 100, 0.5, "", (("logits", 10),))]
    page = report.render(
        report.ReportInput(
            measured=comps,
            summary=compare.summarize(comps),
            trace=trace,
            trace_subset="fast subset",
            generated_on="today",
            explanations=report.EXPLANATIONS,
        )
    )
    for heading in (
        "## Summary",
        "## Verdict rows",
        "## Excluded",
        "## Out of scope",
        "## Rules of thumb",
        "## Analytic vs trace",
        "## Assumptions per row",
    ):
        assert heading in page
    assert "`hfblog-octocoder-bf16-short`" in page and "+10.0 %" in page and "logits +0" in page


def test_cli_validate_measured_json() -> None:
    from llmplan.cli import main

    assert main(["validate", "--help"]) == 0
    code = main(["validate", "--only", "measured", "--no-peers", "--json"])
    assert code in (0, 1)


def test_measured_rows_meet_issue3_targets() -> None:
    """Issue 3 item 7: median |error| <= 10 % and p90 <= 20 % on the fully specified measured rows."""
    from llmplan.validate import compare

    comps = compare.compare_measured([c for c in load_cases() if c.in_stats], peers=False)
    missing = [c.case.row for c in comps if c.error_pct("llmplan") is None]
    assert not missing
    stats = compare.overall(compare.summarize(comps))
    assert stats is not None and stats.meets_measured(), stats
