"""A tiny, bounded pass of the loopback load benchmark (benchmarks/bench_web_load.py): 10 page users for 2 s
against a real uvicorn server on 127.0.0.1 get answers and no error. No latency assertion (the benchmark
itself measures 200 users for 30 s; docs/web.md)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("aiohttp")

from _web_server import serving  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_web_load.py"


def test_ten_users_for_two_seconds_get_no_error():
    spec = importlib.util.spec_from_file_location("bench_web_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with serving() as url:
        out = asyncio.run(bench.load(url, clients=10, duration_s=2.0, think=(0.1, 0.3)))
    assert out["errors"] == 0, out["error_samples"]
    assert out["requests"] >= 10 and out["request_ms"]["p50"] is not None
