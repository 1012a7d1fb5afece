"""`llmplan web`: the planner in a browser — a FastAPI + uvicorn server of one page and the JSON API
(docs/web.md). Binds 127.0.0.1 unless told otherwise; no CORS and no model-hub access unless asked."""

from __future__ import annotations

import ipaddress
import sys
from typing import Annotated

import typer

from llmplan.errors import LlmplanError, SpecError

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_WORKERS = 2
"""One per core of the 2-core machines this was measured on (docs/web.md)."""
MAX_WORKERS = 64


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web(
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port).")] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default loopback only; 0.0.0.0 exposes it).")
    ] = DEFAULT_HOST,
    allow_hub: Annotated[
        bool, typer.Option("--allow-hub", help="Let the page name hub models (org/name): fetches config.json.")
    ] = False,
    cors: Annotated[
        str | None, typer.Option("--cors", help="One origin allowed to call the API from another site.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes that compute estimates (0: the server process).")
    ] = DEFAULT_WORKERS,
) -> None:
    """Serve the page (memory, time, KV-cache and plan charts that follow the controls) and the JSON API
    (/api/train, /api/serve, /api/plan, /api/emit, /api/models, /api/gpus; OpenAPI docs at /docs)."""
    if not 0 <= port <= 65535:
        raise SpecError("--port", f"{port} is out of range (allowed: 0 to 65535)")
    if not 0 <= workers <= MAX_WORKERS:
        raise SpecError("--workers", f"{workers} is out of range (allowed: 0 to {MAX_WORKERS})")
    if cors is not None and not cors.startswith(("http://", "https://")):
        raise SpecError("--cors", f"{cors!r} is not an origin (allowed: http://host[:port] or https://...)")
    try:
        import uvicorn

        from llmplan.web.app import create_app
    except ImportError as exc:
        raise LlmplanError(
            f"llmplan web needs the web extra ({exc.name} is not installed): pip install 'llmplan[web]'"
        ) from None
    app = create_app(allow_hub=allow_hub, cors_origin=cors, workers=workers)
    if not _loopback(host):
        print(f"warning: --host {host} makes the planner reachable from other machines", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"llmplan web on http://{shown}:{port}/ (API docs /docs; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    app.command()(web)
