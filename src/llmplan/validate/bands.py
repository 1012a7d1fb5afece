"""The error bands shipped with llmplan (`llmplan.estimate.error_bands`), computed from the validation results.

`benchmarks/validate_all.py` writes them to `llmplan/catalog/error_bands.json` from the measured comparisons it
has just made; `rows_from_results` reads the same rows back from `benchmarks/results/validation.json`, so a
test can check that the shipped file is current without rerunning the validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llmplan.estimate.error_bands import ALL, BANDS_FILE, MIN_ROWS, SOURCE, JobClass, group_name, job_class
from llmplan.validate.measured import MeasuredCase, load_cases
from llmplan.validate.stats import percentile

ANALYTIC = "llmplan"


def bands_from(rows: Iterable[tuple[JobClass, str, float]]) -> dict[str, dict[str, float]]:
    """{group: {"p90_pct", "n"}} from (class, counter, signed error %) of every measured row: per class and
    counter, per class, and all (`band_for` applies MIN_ROWS)."""
    groups: dict[str, list[float]] = {}
    for cls, counter, err in rows:
        for group in (group_name(cls.value, counter), cls.value, ALL):
            groups.setdefault(group, []).append(abs(err))
    return {g: {"p90_pct": round(percentile(v, 90), 2), "n": len(v)} for g, v in sorted(groups.items())}


def case_row(case: MeasuredCase, error_pct: float | None) -> tuple[JobClass, str, float] | None:
    """(class, counter, error) of one measured case in the statistics, None when it is not."""
    if not case.in_stats or error_pct is None or case.counter is None:
        return None
    return job_class(case.training, case.layout), case.counter.value, error_pct


def rows_from_results(results: dict[str, Any]) -> list[tuple[JobClass, str, float]]:
    """The rows of a validation.json (its `measured_cases`), classified with the measured cases' jobs."""
    cases = {c.row: c for c in load_cases()}
    rows = []
    for entry in results["measured_cases"]:
        case = cases.get(entry["row"])
        row = case_row(case, entry["error_pct"].get(ANALYTIC)) if case is not None else None
        if row is not None:
            rows.append(row)
    return rows


def document(rows: Sequence[tuple[JobClass, str, float]]) -> dict[str, Any]:
    """The content of error_bands.json."""
    return {
        "source": SOURCE,
        "min_rows": MIN_ROWS,
        "generated_by": "benchmarks/validate_all.py",
        "bands": bands_from(rows),
    }


def write(rows: Sequence[tuple[JobClass, str, float]], catalog_dir: Path) -> Path:
    path = catalog_dir / BANDS_FILE
    path.write_text(json.dumps(document(rows), indent=1) + "\n", encoding="utf-8")
    return path
