"""Loopback load benchmark of `llmplan web`: >= 200 concurrent page users for 30 s on 127.0.0.1.

Client model (a user of the page, not a request cannon): each user opens a shared link (one of `LINKS`
starting states), then repeatedly changes one control to a neighbouring value (the page debounces, so one
change is one update), sends the page's two requests at once (POST /api/<mode> and /api/charts/<mode>), waits
for both answers, and thinks for a uniform `THINK_S` seconds before the next change. Users start spread over
the first `THINK_S[1]` seconds. 75 % train, 25 % serve; the control grid (`TRAIN_GRID`, `SERVE_GRID`) is what a
person moves: method, micro-batch, sequence length, GPU, GPU count, ZeRO stage; quantization, context,
concurrency. An error is any answer that is not 200, or a transport failure.

Two passes on one server: `cold` (fresh process: every state is computed the first time it is asked for)
and `warm` (the same 30 s again: the answers are in the LRU cache). Then the plan endpoint alone: server time
(Server-Timing) of the page's default plan, cold and cached.

    python benchmarks/bench_web_load.py [--clients 200] [--duration 30]

Writes benchmarks/results/web_load.json. Not run by the test suite (tests/test_web_load_smoke.py runs a tiny
bounded pass: 10 clients, 2 s, no latency assertion).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "web_load.json"
THINK_S = (2.0, 5.0)
TRAIN_GRID = {
    "model": ["llama-3.2-1b", "llama-3.1-8b", "qwen2.5-7b"],
    "method": ["full", "lora", "qlora"],
    "micro_batch": [1, 2, 4, 8],
    "seq_len": [1024, 2048, 4096],
    "gpu": ["h100-sxm-80gb", "a100-80gb"],
    "gpus": [1, 8],
    "zero": [0, 3],
}
SERVE_GRID = {
    "model": ["llama-3.2-1b", "llama-3.1-8b", "qwen2.5-7b"],
    "quant": ["bf16", "fp8"],
    "context": [2048, 8192, 32768],
    "batch": [1, 8, 32, 128],
    "gpu": ["h100-sxm-80gb", "h200"],
}
LINKS = 8
"""Shared links the users open first (per mode)."""
PLAN_BODY = {"model": "llama-3.2-1b", "gpus": "8", "top": 5}
"""The page's default plan (every layout of 8 GPUs searched)."""
PLAN_SMALL = {"model": "llama-3.1-8b", "gpus": "8", "tp": 1, "pp": 1, "cp": 1, "no_offload": True, "top": 5}


def _valid(mode: str, state: dict) -> dict:
    """The request body of a state (ZeRO only with several GPUs, as the page's user would set it)."""
    body = dict(state)
    if mode == "train" and body.get("gpus") == 1:
        body["zero"] = 0
    return body


def _links(rng: random.Random, grid: dict) -> list[dict]:
    return [{k: rng.choice(v) for k, v in grid.items()} for _ in range(LINKS)]


def _move(rng: random.Random, state: dict, grid: dict) -> dict:
    """One control moved to a neighbouring value."""
    key = rng.choice([k for k in grid if k != "model"] + ["model"] * (rng.random() < 0.1))
    values = grid[key]
    i = values.index(state[key])
    j = min(len(values) - 1, max(0, i + rng.choice((-1, 1))))
    return {**state, key: values[j if j != i else (i + 1) % len(values)]}


def _timing(headers) -> float | None:
    raw = headers.get("server-timing", "")
    return float(raw.split("dur=")[1]) if "dur=" in raw else None


async def _user(session, url, rng, stop_at, links, rec, think):
    mode = "train" if rng.random() < 0.75 else "serve"
    grid = TRAIN_GRID if mode == "train" else SERVE_GRID
    state = dict(rng.choice(links[mode]))
    await asyncio.sleep(rng.uniform(0, think[1]))
    while time.monotonic() < stop_at:
        body = _valid(mode, state)
        start = time.perf_counter()

        async def one(path, body=body):
            t = time.perf_counter()
            try:
                async with session.post(f"{url}{path}", json=body) as r:
                    await r.read()
                    rec["server_ms"].append(_timing(r.headers))
                    if r.status != 200:
                        rec["errors"].append(f"{r.status} {path} {body}")
            except Exception as exc:  # transport failure: counted, never hidden
                rec["errors"].append(f"{type(exc).__name__} {path}")
            rec["request_ms"].append((time.perf_counter() - t) * 1e3)

        await asyncio.gather(one(f"/api/{mode}"), one(f"/api/charts/{mode}"))
        rec["update_ms"].append((time.perf_counter() - start) * 1e3)
        state = _move(rng, state, grid)
        await asyncio.sleep(rng.uniform(*think))


def _pct(values: list[float], q: float) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return round(vals[min(len(vals) - 1, int(q * len(vals)))], 2)


async def load(url: str, clients: int, duration_s: float, seed: int = 0, think=THINK_S) -> dict:
    """Run `clients` users for `duration_s` against `url`; latency percentiles and errors."""
    import aiohttp

    rng = random.Random(seed)
    links = {"train": _links(rng, TRAIN_GRID), "serve": _links(rng, SERVE_GRID)}
    rec: dict[str, list] = {"request_ms": [], "update_ms": [], "server_ms": [], "errors": []}
    stop_at = time.monotonic() + duration_s
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        users = [
            _user(session, url, random.Random(rng.random()), stop_at, links, rec, think) for _ in range(clients)
        ]
        started = time.perf_counter()
        await asyncio.gather(*users)
        wall = time.perf_counter() - started
    return {
        "clients": clients,
        "duration_s": duration_s,
        "wall_s": round(wall, 2),
        "requests": len(rec["request_ms"]),
        "requests_per_s": round(len(rec["request_ms"]) / wall, 1),
        "errors": len(rec["errors"]),
        "error_samples": rec["errors"][:5],
        "request_ms": {"p50": _pct(rec["request_ms"], 0.5), "p99": _pct(rec["request_ms"], 0.99),
                       "max": _pct(rec["request_ms"], 1.0)},
        "update_ms": {"p50": _pct(rec["update_ms"], 0.5), "p99": _pct(rec["update_ms"], 0.99)},
        "server_ms": {"p50": _pct(rec["server_ms"], 0.5), "p99": _pct(rec["server_ms"], 0.99)},
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plan_times(url: str) -> dict:
    import httpx

    out = {}
    for name, body in (("default_8_gpus", PLAN_BODY), ("fixed_tp_pp_cp_8_gpus", PLAN_SMALL)):
        times = []
        for _ in range(3):
            r = httpx.post(f"{url}/api/plan", json=body, timeout=120)
            assert r.status_code == 200, r.text
            times.append(_timing(r.headers))
        out[name] = {"body": body, "cold_server_ms": times[0], "cached_server_ms": min(times[1:]),
                     "searched": r.json()["plan"]["searched"]}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=30.0)
    args = ap.parse_args()
    if not (1 <= args.clients <= 1000 and 1 <= args.duration <= 120):
        sys.exit("bench_web_load: --clients 1..1000 and --duration 1..120 s (bounded by design)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmplan", "web", "--port", str(port)], cwd=ROOT, env={**os.environ},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/gpus", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)
        cold = asyncio.run(load(url, args.clients, args.duration, seed=1))
        warm = asyncio.run(load(url, args.clients, args.duration, seed=1))
        plans = _plan_times(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "client_model": __doc__.split("\n\n")[1].replace("\n", " "),
        "think_s": THINK_S,
        "train_grid": TRAIN_GRID,
        "serve_grid": SERVE_GRID,
        "cold": cold,
        "warm": warm,
        "plan": plans,
        "target": {"p99_request_ms": 500, "errors": 0, "plan_server_ms": 100},
        "machine": f"{platform.machine()} cores={os.cpu_count()} python {platform.python_version()}",
        "note": "one uvicorn process on 127.0.0.1 (the default `llmplan web`), client and server on the same "
        "shared 2-core machine; cold = fresh server, warm = the same users again (answers cached)",
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("cold", "warm", "plan")}, indent=1))


if __name__ == "__main__":
    main()
