"""What the web API computes, and how it stays cheap and bounded.

Every answer is the `llmplan.api` function the CLI calls, dumped with `llmplan.schema.dump` (the `--json`
text, byte for byte) or, for the charts, `Charts.model_dump(mode="json")` (`llmplan.charts`, the data that
`--plot` draws). Answers are kept in an LRU cache keyed by the endpoint and the canonical request
(`model_dump_json()` of the validated body: the defaults filled in, keys in declaration order), so a page that
comes back to a state, or a shared link opened by many, costs one lookup. Model specs of the catalog are parsed
once.

Bounds: one train / serve estimate is a fixed amount of work (the suggestion search and the chart sweeps visit
a fixed number of candidates); a plan search is not, so it runs in a worker process with a wall-time limit
(`PLAN_TIME_LIMIT_S`): past it the worker is killed and the answer is a 422 naming the options that shrink the
search. One plan runs at a time (`PLAN_QUEUE_S` of waiting, then 503).
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import multiprocessing.pool
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.api import emit as api_emit
from llmplan.api import plan as api_plan
from llmplan.api import serve as api_serve
from llmplan.api import train as api_train
from llmplan.errors import LlmplanError, SpecError
from llmplan.loading import checked, fetch_hub_config, parse_config_text
from llmplan.schema import dump
from llmplan.specs.model import ModelSpec
from llmplan.web import requests as rq

CACHE_ENTRIES = 4096
"""Answers kept (a train answer is ~30 kB: ~120 MB at most)."""
PLAN_TIME_LIMIT_S = 20.0
"""Wall time one plan search may take before it is stopped (the CLI's plans of up to 8 GPUs take 0.1-4 s
here; benchmarks/results/plan_speed.json has the 64-512 GPU searches at 20-110 s)."""
PLAN_QUEUE_S = 30.0
"""How long a plan request waits for the plan worker before a 503."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status and JSON text."""

    status: int
    body: bytes


def error_answer(exc: LlmplanError) -> Answer:
    """400 with the message, and each problem's field / value / allowed (all problems of the request)."""
    problems = getattr(exc, "problems", ())
    doc = {
        "error": type(exc).__name__,
        "field": request_field(getattr(exc, "field", None) or getattr(exc, "kind", None) or _lead(str(exc))),
        "message": str(exc),
        "problems": [
            {"field": request_field(p.field), "value": p.value, "allowed": p.allowed, "message": p.message} for p in problems
        ],
    }
    return Answer(400, json.dumps(doc).encode())


def request_field(field: str | None) -> str | None:
    """The body key of a CLI option name (`--micro-batch` -> `micro_batch`); other names as they are."""
    return None if field is None else field.lstrip("-").replace("-", "_")


def _lead(message: str) -> str | None:
    """The field a message starts with (`model_type: 'x' ...` -> model_type), as llmplan's messages do."""
    head = message.split(":", 1)[0].strip()
    return head if head and len(head) < 60 and head.replace("_", "").replace("-", "").replace(".", "").isalnum() else None


@functools.lru_cache(maxsize=256)
def catalog_spec(model_id: str) -> ModelSpec:
    """The catalog model's spec, parsed once."""
    entry = catalog.model_entry(model_id)
    return parse_config(entry.config, entry.id)


def model_loader(req: rq.ModelRef, allow_hub: bool) -> tuple[Callable[[], ModelSpec], str]:
    """A loader of the request's model and the name the reproducing commands give it. Never a local path; a
    hub id only with --allow-hub (catalog models of a hub id are offline); an upload is parsed as data."""
    if (req.model is None) == (req.config is None):
        raise SpecError("model", "give one of model (a catalog id) or config (the text of a config.json)")
    if req.config is not None:
        text = req.config
        return (lambda: checked(parse_config(parse_config_text(text, "config"), "uploaded config.json"))), (
            "config.json"
        )
    ref = req.model.strip()
    if catalog.is_model_id(ref):
        return (lambda: catalog_spec(ref)), ref
    known = catalog.find_by_hub_id(ref) if _HUB_ID.match(ref) else None
    if known is not None:
        return (lambda: catalog_spec(known.id)), ref
    if _HUB_ID.match(ref) and allow_hub:
        return (lambda: checked(parse_config(fetch_hub_config(ref), ref))), ref
    hub = ", or org/name (this server was started with --allow-hub)" if allow_hub else ""
    hint = "" if allow_hub else "; hub ids need `llmplan web --allow-hub`"
    close = catalog.suggest(ref, catalog.model_ids())
    near = f"; did you mean {', '.join(close)}?" if close else ""
    raise SpecError(
        "model", f"{ref!r} is not a catalog id (allowed: an id of GET /api/models, an uploaded config{hub}){hint}{near}"
    )


class Cache:
    """A thread-safe LRU of answers, with one computation at a time and one per key.

    The page asks for a state's numbers and its charts at once, and users who open one link ask for the same
    states: the first request of a key computes every answer of its group (`names`), the others wait for it
    (single flight). Computations run one at a time (`_compute`): one process holds one core for Python
    code, and cached answers then wait for at most one computation's GIL slices instead of forty."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._data: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._compute = threading.Lock()
        self._flights: dict[str, threading.Event] = {}
        self._entries = entries
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Answer | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return found

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._data[key] = answer
            self._data.move_to_end(key)
            while len(self._data) > self._entries:
                self._data.popitem(last=False)

    def answer(
        self,
        kind: str,
        names: tuple[str, ...],
        canonical: str,
        compute: Callable[[], dict[str, bytes]],
        serial: bool = True,
    ) -> Answer:
        """The answer of `kind` for the canonical request: cached, or computed with the rest of `names`
        (an error answer is kept for every name of the group); `serial` False for work done in another
        process (the plan worker), which need not wait for this process's computations."""
        key = f"{kind}:{canonical}"
        while True:
            hit = self.get(key)
            if hit is not None:
                return hit
            group = f"{names[0]}:{canonical}"
            with self._lock:
                flight = self._flights.get(group)
                mine = flight is None
                if mine:
                    flight = self._flights[group] = threading.Event()
            if mine:
                break
            flight.wait(PLAN_TIME_LIMIT_S + PLAN_QUEUE_S)
        try:
            with self._compute if serial else contextlib.nullcontext():
                try:
                    found = {f"{n}:{canonical}": Answer(200, body) for n, body in compute().items()}
                except (LlmplanError, Failed) as exc:
                    failed = exc.answer if isinstance(exc, Failed) else error_answer(exc)
                    found = {f"{n}:{canonical}": failed for n in names}
            for k, v in found.items():
                self.put(k, v)
            return found[key]
        finally:
            with self._lock:
                del self._flights[group]
            flight.set()


def _charts_json(charts: object) -> bytes:
    from llmplan.schema import Out

    assert isinstance(charts, Out)
    return charts.model_dump_json().encode()


def train_answers(req: rq.ModelRef, allow_hub: bool) -> tuple[bytes, bytes]:
    """(`llmplan train --json`, the training charts) of the request."""
    from llmplan.charts import training_charts
    from llmplan.cli import train_command

    load, ref = model_loader(req, allow_hub)
    opts = rq.train_options(req)
    # the options the body gave first, then the defaults: the order of the CLI's ctx.params, which writes the
    # suggestions' commands
    given = {k: v for k, v in req.__dict__.items() if k in req.model_fields_set}
    given |= {k: v for k, v in req.__dict__.items() if k not in given} | {"model": ref}
    res = api_train.train(load, opts, lambda tip: train_command.command(ref, given, tip))
    run = res.run
    charts = training_charts(run.spec, run.job, run.layout, run.cluster, timing=res.timing)
    return dump(res.out()).encode(), _charts_json(charts)


def serve_answers(req: rq.ModelRef, allow_hub: bool) -> tuple[bytes, bytes]:
    """(`llmplan serve --json`, the serving charts) of the request."""
    from llmplan.charts import serving_charts

    load, _ = model_loader(req, allow_hub)
    run = api_serve.serve(load, rq.serve_options(req))
    return dump(run.out()).encode(), _charts_json(serving_charts(run.spec, run.job, run.cluster))


def emit_answer(req: rq.ModelRef, allow_hub: bool) -> bytes:
    """The launch config of the plan `llmplan train` estimates with the request's options."""
    load, _ = model_loader(req, allow_hub)
    opts = rq.train_options(req)
    api_train.check(opts)
    run = api_train.prepare(load(), opts)
    return dump(api_emit.emit_out(req.target, run.spec, run.estimate, run.cluster)).encode()


def plan_answers(body: str, allow_hub: bool) -> tuple[int, bytes, bytes]:
    """(status, `llmplan plan --json` or the error, the plan charts) of a PlanRequest's JSON text; runs in
    the plan worker process (module docstring)."""
    from llmplan.charts import plan_charts

    req = rq.PlanRequest.model_validate_json(body)
    try:
        load, ref = model_loader(req, allow_hub)
        res = api_plan.plan(load, rq.plan_options(req), ref)
        return 200, dump(res.out).encode(), _charts_json(plan_charts(res.choice, res.chosen))
    except LlmplanError as exc:
        return 400, error_answer(exc).body, b""


class PlanWorker:
    """One worker process for plan searches, stopped (and replaced) when a search passes the time limit."""

    def __init__(self, allow_hub: bool, time_limit_s: float = PLAN_TIME_LIMIT_S) -> None:
        self._allow_hub = allow_hub
        self._limit = time_limit_s
        self._lock = threading.Lock()
        self._pool: multiprocessing.pool.Pool | None = None

    def _start(self) -> multiprocessing.pool.Pool:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # a fork of a threaded server can deadlock
            self._pool = ctx.Pool(1, initializer=_warm)
        return self._pool

    def run(self, body: str) -> tuple[int, bytes, bytes]:
        if not self._lock.acquire(timeout=PLAN_QUEUE_S):
            raise PlanBusy()
        try:
            pool = self._start()
            job = pool.apply_async(plan_answers, (body, self._allow_hub))
            try:
                return job.get(timeout=self._limit)
            except multiprocessing.TimeoutError:
                pool.terminate()
                self._pool = None
                raise SpecError(
                    "gpus",
                    f"the layout search passed the web server's limit of {self._limit:g} s (allowed: fix tp, pp "
                    "or cp, no_offload true, fewer GPU counts or accelerators; or run `llmplan plan` with the "
                    "same options)",
                ) from None
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


class Failed(Exception):
    """An answer that is an error (the plan worker's), kept as it was written."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class PlanBusy(Exception):
    """The plan worker stayed busy for PLAN_QUEUE_S."""


def _warm() -> None:
    """Import the planner once in the worker."""
    import llmplan.charts  # noqa: F401
    import llmplan.web.service  # noqa: F401
