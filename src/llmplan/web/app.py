"""The FastAPI app of `llmplan web`: the JSON API (OpenAPI docs at /docs) and the page (/).

    GET  /api/models, /api/gpus        the catalog (`llmplan models --json`, `llmplan gpus --json`)
    POST /api/train, /api/serve        `llmplan train --json` / `llmplan serve --json` of the body's options
    POST /api/plan                     `llmplan plan --json` (a bounded search: web/service.py)
    POST /api/emit                     the launch config `llmplan emit TARGET` writes (schema.EmitOut)
    POST /api/charts/{train,serve,plan} the charts of the same body (`llmplan.charts`, what --plot draws)

Safe by default: request bodies over `MAX_BODY_BYTES` get a 413 (by Content-Length, and by the bytes read
when it is absent or wrong); every malformed body a 422 naming the field, every value outside the CLI's
bounds a 400 with the CLI's message; no CORS header unless `cors_origin` is given; no hub access unless
`allow_hub`. Every answer carries `Server-Timing: app;dur=<ms>` (the time from the request's first byte to
the answer, validation included).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from llmplan import catalog
from llmplan.catalog.summary import catalog_models
from llmplan.errors import LlmplanError
from llmplan.schema import GpusOut, ModelsOut, dump
from llmplan.units import MIB
from llmplan.web import requests as rq
from llmplan.web import service as sv
from llmplan.web.pool import compute as compute_group

MAX_BODY_BYTES = 1 * MIB
"""Largest request body (an uploaded config.json is at most loading.MAX_CONFIG_BYTES of text; real ones are
under 10 kB)."""
STATIC = Path(__file__).parent / "static"
JSON = "application/json"


class _Guard:
    """Pure ASGI middleware: the body limit (413) and the Server-Timing header."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(send, self.limit, length.decode("latin-1")[:20])
            return
        seen = 0
        refused = False

        async def limited() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise _BodyTooLarge()
            return message

        async def timed(message: dict) -> None:
            if refused:  # the app answered a body cut short (FastAPI: 400): the answer is the 413
                if message["type"] == "http.response.start":
                    await _too_large(send, self.limit, f"more than {self.limit:,}")
                return
            if message["type"] == "http.response.start":
                dur = (time.perf_counter() - start) * 1e3
                timing = (b"server-timing", f"app;dur={dur:.3f}".encode())
                message = {**message, "headers": [*message.get("headers", []), timing]}
            await send(message)

        try:
            await self.app(scope, limited, timed)
        except _BodyTooLarge:
            await _too_large(send, self.limit, f"more than {self.limit:,}")


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int, given: str) -> None:
    body = json.dumps(
        {
            "error": "RequestTooLarge",
            "field": "body",
            "message": f"body: {given} bytes (allowed: at most {limit:,} bytes)",
            "problems": [],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        value = repr(err.get("input"))
        problems.append(
            {
                "field": ".".join(loc) or "body",
                "value": value if len(value) <= 80 else value[:77] + "...",
                "allowed": str(err.get("ctx", {}).get("expected", "")) or err.get("type", ""),
                "message": err.get("msg", ""),
            }
        )
    message = "; ".join(f"{p['field']}: {p['value']}: {p['message']}" for p in problems)
    doc = {"error": "RequestValidationError", "field": problems[0]["field"] if problems else "body"}
    return JSONResponse({**doc, "message": message, "problems": problems}, status_code=422)


def _domain_error(_: Request, exc: LlmplanError) -> Response:
    answer = sv.error_answer(exc)
    return Response(answer.body, status_code=answer.status, media_type=JSON)


def _busy(_: Request, exc: sv.PlanBusy) -> JSONResponse:
    msg = f"plan: another plan search has been running for {sv.PLAN_QUEUE_S:g} s (allowed: retry later)"
    doc = {"error": "Busy", "field": "plan", "message": msg, "problems": []}
    return JSONResponse(doc, status_code=503, headers={"retry-after": "5"})


def create_app(*, allow_hub: bool = False, cors_origin: str | None = None, workers: int = 0) -> FastAPI:
    """The app; `allow_hub` lets `model` be a hub id (config.json fetched); `cors_origin` is the one origin
    allowed to call the API from another site; `workers` > 0 computes estimates in that many worker
    processes (web/pool.py), 0 in the server process."""
    app = FastAPI(
        title="llmplan",
        summary="Memory per GPU, time, cost and layouts of LLM training and serving: the CLI's API.",
        version="1",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(LlmplanError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(sv.PlanBusy, _busy)  # type: ignore[arg-type]
    cache = sv.Cache()
    worker = sv.PlanWorker(allow_hub)
    app.state.cache, app.state.plan_worker = cache, worker
    app.router.on_shutdown.append(worker.close)
    pool = None
    if workers > 0:
        from llmplan.web.pool import Workers

        pool = Workers(workers, allow_hub)
        app.router.on_shutdown.append(pool.close)
    models_json = dump(ModelsOut(models=catalog_models())).encode()
    gpus_json = dump(GpusOut(gpus=tuple(catalog.accelerators()))).encode()

    def cached(kind: str, req: rq.ModelRef, compute: Any) -> Response:
        base = kind.removeprefix("charts-")
        names = (base,) if base == "emit" else (base, f"charts-{base}")
        serial = base != "plan" and pool is None  # the plan worker and the pool are other processes
        hit = cache.answer(kind, names, req.model_dump_json(), compute, serial=serial)
        return Response(hit.body, status_code=hit.status, media_type=JSON)

    def train_pair(req: rq.ModelRef) -> dict[str, bytes]:
        return pool.run("train", req) if pool is not None else compute_group("train", req, allow_hub)

    def serve_pair(req: rq.ModelRef) -> dict[str, bytes]:
        return pool.run("serve", req) if pool is not None else compute_group("serve", req, allow_hub)

    def plan_pair(req: rq.ModelRef) -> dict[str, bytes]:
        status, out, charts = worker.run(req.model_dump_json())
        if status != 200:
            raise sv.Failed(sv.Answer(status, out))
        return {"plan": out, "charts-plan": charts}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/models", summary="The model catalog (llmplan models --json)")
    def models() -> Response:
        return Response(models_json, media_type=JSON)

    @app.get("/api/gpus", summary="The accelerators (llmplan gpus --json)")
    def gpus() -> Response:
        return Response(gpus_json, media_type=JSON)

    def emit_one(req: rq.ModelRef) -> dict[str, bytes]:
        return pool.run("emit", req) if pool is not None else compute_group("emit", req, allow_hub)

    routes = (
        ("train", rq.TrainRequest, train_pair, "llmplan train --json"),
        ("serve", rq.ServeRequest, serve_pair, "llmplan serve --json"),
        ("plan", rq.PlanRequest, plan_pair, "llmplan plan --json (a bounded search)"),
        ("emit", rq.EmitRequest, emit_one, "the launch config of llmplan emit TARGET (schema.EmitOut)"),
    )
    for kind, body, compute, summary in routes:
        _post(app, f"/api/{kind}", kind, body, compute, cached, summary)
        if kind != "emit":
            what = f"the charts of llmplan {kind} --plot, as data (llmplan.charts)"
            _post(app, f"/api/charts/{kind}", f"charts-{kind}", body, compute, cached, what)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if cors_origin is not None:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=[cors_origin], allow_methods=["GET", "POST"], allow_headers=["content-type"]
        )
    app.add_middleware(_Guard)
    return app


def _post(app: FastAPI, path: str, kind: str, body: type, compute: Any, cached: Any, summary: str) -> None:
    """POST `path`: the body validated as `body`, answered from the cache or by `compute` (a plain `def`:
    FastAPI runs it in its thread pool, off the event loop)."""

    def endpoint(req: Any) -> Response:
        return cached(kind, req, lambda: compute(req))

    endpoint.__annotations__ = {"req": body, "return": Response}
    endpoint.__name__ = kind.replace("-", "_")
    app.add_api_route(path, endpoint, methods=["POST"], summary=summary)
