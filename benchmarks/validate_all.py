"""The whole validation: every measured row with the peers, the full trace matrix; writes docs/accuracy.md,
benchmarks/results/validation.json and the error bands every estimate carries (llmplan/catalog/error_bands.json).

Acceptance (issue 3 item 7, issue 4 item 4): analytic vs trace median |error| <= 3 % and max <= 8 % on peak
allocated memory over the matrix; analytic vs the fully specified measured rows median <= 10 % and
90th percentile <= 20 % on the row's counter. Exit status 1 when a target is missed.

Run: /work/venv/bin/python benchmarks/validate_all.py [--fast]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

from llmplan.validate import bands, compare, report, trace_matrix
from llmplan.validate.stats import ErrorStats

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "accuracy.md"
OUT = ROOT / "benchmarks" / "results" / "validation.json"


def _stats(stats: ErrorStats | None) -> dict | None:
    if stats is None:
        return None
    return {
        "n": stats.n,
        "median_abs_pct": stats.median_abs_pct,
        "p90_abs_pct": stats.p90_abs_pct,
        "max_abs_pct": stats.max_abs_pct,
        "median_signed_pct": stats.median_signed_pct,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="trace only the CI subset")
    args = parser.parse_args()

    start = time.perf_counter()
    measured = compare.compare_measured(progress=lambda row: print(f"measured  {row}", flush=True))
    summary = compare.summarize(measured)
    measured_s = time.perf_counter() - start

    cases = trace_matrix.FAST if args.fast else trace_matrix.CASES
    start = time.perf_counter()
    trace = trace_matrix.run_matrix(cases, progress=lambda cid: print(f"trace     {cid}", flush=True))
    trace_s = time.perf_counter() - start
    trace_stats = ErrorStats.of([c.error_pct for c in trace if c.error_pct is not None])

    subset = "fast subset" if args.fast else "full matrix"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(
        report.render(
            report.ReportInput(
                measured=measured,
                summary=summary,
                trace=trace,
                trace_subset=subset,
                generated_on=dt.date.today().isoformat(),
                explanations=report.EXPLANATIONS,
            )
        ),
        encoding="utf-8",
    )

    band_rows = [r for c in measured if (r := bands.case_row(c.case, c.error_pct(bands.ANALYTIC))) is not None]
    bands.write(band_rows, ROOT / "src" / "llmplan" / "catalog")
    measured_all = compare.overall(summary)
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "trace_subset": subset,
        "measured_s": measured_s,
        "trace_s": trace_s,
        "measured_summary": [{"engine": r.engine, "group": r.group, **_stats(r.stats)} for r in summary],
        "measured_target_met": bool(measured_all and measured_all.meets_measured()),
        "trace_summary": _stats(trace_stats),
        "trace_target_met": bool(trace_stats and trace_stats.meets_trace() and trace_stats.n == len(trace)),
        "trace_cases": [
            {
                "case": c.case.id,
                "arch": c.case.arch,
                "kind": c.case.kind,
                "trace_bytes": c.trace_bytes,
                "analytic_bytes": c.analytic_bytes,
                "error_pct": c.error_pct,
                "trace_s": c.trace_s,
                "note": c.error,
            }
            for c in trace
        ],
        "measured_cases": [
            {
                "row": c.case.row,
                "status": c.case.status.value,
                "counter": c.case.counter.value if c.case.counter else None,
                "measured_bytes": c.case.measured_bytes,
                "figures": {f.engine: f.bytes for f in c.figures},
                "error_pct": {f.engine: c.error_pct(f.engine) for f in c.figures},
                "notes": {f.engine: f.note for f in c.figures if f.note},
            }
            for c in measured
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} and {OUT.relative_to(ROOT)}")
    print(f"measured: {_stats(measured_all)} target met: {result['measured_target_met']}")
    print(f"trace:    {_stats(trace_stats)} target met: {result['trace_target_met']}")
    return 0 if result["measured_target_met"] and result["trace_target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
