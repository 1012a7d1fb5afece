"""Estimates computed in worker processes (`llmplan web --workers N`): one server process runs Python on one
core, so the cold answers of train / serve / emit go to N processes while the server process only validates,
looks up the cache and writes answers. Each worker imports llmplan once; a domain error comes back as its
400 answer (exceptions are not pickled)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool

from llmplan.errors import LlmplanError
from llmplan.web import requests as rq
from llmplan.web import service as sv

_BODIES = {"train": rq.TrainRequest, "serve": rq.ServeRequest, "emit": rq.EmitRequest}


def answers(kind: str, body: str, allow_hub: bool) -> tuple[int, dict[str, bytes]]:
    """(200, the answers of the group) or (400, {"error": the answer}) of a request's canonical JSON."""
    req = _BODIES[kind].model_validate_json(body)
    try:
        return 200, compute(kind, req, allow_hub)
    except LlmplanError as exc:
        return 400, {"error": sv.error_answer(exc).body}


def compute(kind: str, req: rq.ModelRef, allow_hub: bool) -> dict[str, bytes]:
    """Every answer of the request's group, by endpoint name."""
    if kind == "train":
        out, charts = sv.train_answers(req, allow_hub)
        return {"train": out, "charts-train": charts}
    if kind == "serve":
        out, charts = sv.serve_answers(req, allow_hub)
        return {"serve": out, "charts-serve": charts}
    return {"emit": sv.emit_answer(req, allow_hub)}


class Workers:
    """N worker processes (spawned: a fork of a threaded server can deadlock)."""

    def __init__(self, n: int, allow_hub: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pool: multiprocessing.pool.Pool = ctx.Pool(n, initializer=_warm)
        self._allow_hub = allow_hub

    def run(self, kind: str, req: rq.ModelRef) -> dict[str, bytes]:
        status, found = self._pool.apply(answers, (kind, req.model_dump_json(), self._allow_hub))
        if status != 200:
            raise sv.Failed(sv.Answer(status, found["error"]))
        return found

    def close(self) -> None:
        """Stop the workers (the server's shutdown): none is left behind."""
        self._pool.terminate()


def _warm() -> None:
    import llmplan.charts  # noqa: F401
    import llmplan.cli.train_command  # noqa: F401
