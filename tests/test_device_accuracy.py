"""The analytic estimate held to what the GPU campaign measured (benchmarks/results/device/), within the
tolerances docs/accuracy-device.md states; skipped, saying why, while no campaign has run."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_cases as dc  # noqa: E402
import device_report  # noqa: E402


def test_analytic_within_tolerance_of_the_measured_peaks() -> None:
    runs = device_report.measured(device_report.load(device_report.RESULTS))
    if not runs:
        pytest.skip(
            "no GPU campaign results in benchmarks/results/device/ (no GPU has been lent to run "
            "benchmarks/device_campaign.py; docs/accuracy-device.md says how): nothing measured to check against"
        )
    assert device_report.check(runs) == []


def test_the_page_states_the_tolerances_the_check_uses() -> None:
    page = (ROOT / "docs" / "accuracy-device.md").read_text()
    for counter, tol in device_report.TOLERANCE.items():
        assert f"{counter} ±{100 * tol:.0f} %" in page
    if not device_report.measured(device_report.load(device_report.RESULTS)):
        assert "No campaign has run yet" in page


def _record(case: dc.TrainCase, **measured: int) -> dict:
    """A record shaped as the campaign writes it, with the measured counters given (a fixture of this test,
    never written to the results folder)."""
    return {
        "case": case.id,
        "status": "ok",
        "environment": {"dry_run": False, "gpu_total_bytes": 150754820096},
        "analytic": {"gpu": dc.GPU},
        "measured": measured,
    }


def test_the_check_flags_an_estimate_beyond_tolerance() -> None:
    """The check fails as it should: counters equal to the analytic estimate pass, 30 % away they fail, and an
    OOM where the estimate left plenty of room fails."""
    case = dc.TRAIN_CASES[0]
    est = dc.analytic(case)
    exact = _record(
        case,
        peak_allocated_bytes=est["allocated_bytes"],
        peak_reserved_bytes=est["reserved_bytes"],
        device_used_bytes=est["device_bytes"],
    )
    assert device_report.check({case.id: exact}) == []
    off = copy.deepcopy(exact)
    off["measured"]["peak_allocated_bytes"] = int(est["allocated_bytes"] / 1.3)
    failures = device_report.check({case.id: off})
    assert len(failures) == 1 and "allocated" in failures[0]
    oom = copy.deepcopy(exact)
    oom["status"], oom["measured"] = "oom", None
    assert "OOM" in device_report.check({case.id: oom})[0]


def test_dry_run_records_are_never_taken_for_measurements() -> None:
    plan = device_report.load(device_report.PLAN)
    assert plan and device_report.measured(plan) == {}
