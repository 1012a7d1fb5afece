"""Validation: the analytic engine against the trace engine (the matrix of issue 4) and against the published
measurements of shared/data/measured.jsonl (issue 3 item 7), with peer estimators side by side.

Modules: `measured` (the curated cases, `measured_cases.json`), `stats` (error statistics and tolerances),
`peers` (llm-analysis, DeepSpeed's and accelerate's estimators), `compare` (measured rows through every engine),
`trace_matrix` (the analytic-vs-trace matrix), `engines` (how each engine is asked), `report`
(docs/accuracy.md). Importing any of them needs no torch; running the trace matrix does.
"""
