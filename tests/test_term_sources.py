"""Every Term's `source` that names a llmplan module (and a function or constant in it) names one that exists.

Two nets: the string constants written as a Term's source anywhere under src/llmplan (read with `ast`), and the
sources of the terms a matrix of estimates returns (training, inference, time, serving, their explain steps).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from llmplan import catalog
from llmplan.breakdown import Term
from llmplan.estimate.explain import explain_training
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.serving import plan_serving
from llmplan.estimate.time import estimate_time
from llmplan.estimate.training import estimate_training
from llmplan.loading import load_model
from llmplan.specs.engines import ServingEngine
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob
from llmplan.specs.serving import LengthDist, Workload
from llmplan.specs.training import Layout, Method, TrainingJob, ZeroStage

SRC = Path(__file__).resolve().parents[1] / "src" / "llmplan"
PACKAGES = "adapters|catalog|cli|emit|estimate|formulas|plan|schema|specs|trace|validate"
CITATION = re.compile(
    rf"\b(?:llmplan[./])?((?:{PACKAGES})(?:[./](?!py\b)[a-z_][a-z0-9_]*)*)(?:\.py)?"
    r"(?:(?:\s+|\.)([A-Za-z_][A-Za-z0-9_]*))?(?=$|[^A-Za-z0-9_])"
)
"""`formulas/model_states.py rank_inventory`, `formulas.pipeline`, `llmplan.stacks`, `estimate.training.Phase`."""


def _module(dotted: str) -> object | None:
    try:
        return importlib.import_module(f"llmplan.{dotted}")
    except ModuleNotFoundError:
        return None


def _defines(mod: object, names: list[str]) -> bool:
    """Whether `mod` itself defines names[0] (a re-export cites the wrong file) and it has the attributes after."""
    first = names[0]
    if not hasattr(mod, first):
        return False
    obj = getattr(mod, first)
    home = getattr(obj, "__module__", None) if callable(obj) else None
    if home is not None and home != mod.__name__:
        return False
    if home is None and not re.search(rf"^{first}\b[^=\n]*=", Path(mod.__file__).read_text(), re.M):
        return False
    for name in names[1:]:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def unresolved(source: str) -> list[str]:
    """The citations in `source` that name no llmplan module, or a function / constant missing from it."""
    bad = []
    for m in CITATION.finditer(source.replace("llmplan.stacks", "stacks_module")):
        path, attr = m.group(1).replace("/", "."), m.group(2)
        parts = path.split(".")
        # the longest importable prefix is the module; what follows must be attributes of it
        for cut in range(len(parts), 0, -1):
            mod = _module(".".join(parts[:cut]))
            if mod is not None:
                break
        else:
            bad.append(m.group(0))
            continue
        names = parts[cut:] + (
            [attr] if attr and ("_" in attr or attr.isupper() or attr[0].isupper()) else []
        )
        if names and not _defines(mod, names):
            bad.append(m.group(0))
    if "stacks_module" in source.replace("llmplan.stacks", "stacks_module") and _module("stacks") is None:
        bad.append("llmplan.stacks")
    return bad


def test_the_resolver_catches_a_stale_citation():
    assert unresolved("formulas/model_states.py rank_inventory (Megatron)") == [
        "formulas/model_states.py rank_inventory"
    ]
    assert unresolved("formulas/inventory.py rank_inventory (Megatron)") == []
    assert unresolved("estimate.training.Phase; formulas/roofline.py HBM_BANDWIDTH_FRACTION") == []
    assert unresolved("formulas/nowhere.py") == ["formulas/nowhere.py"]
    assert unresolved("formulas/activations.py backward transients; Korthikanti et al. 2022") == []


def _source_strings() -> list[tuple[str, str]]:
    """(file:line, text) of every string constant passed as a Term's source (5th argument or source=)."""
    out = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Term"):
                continue
            args = [kw.value for kw in node.keywords if kw.arg == "source"] + node.args[4:5]
            for arg in args:
                text = "".join(
                    n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                )
                out.append((f"{path.relative_to(SRC)}:{node.lineno}", text))
    return out


def test_every_written_source_resolves():
    sources = _source_strings()
    assert len(sources) > 30
    bad = {where: unresolved(text) for where, text in sources if unresolved(text)}
    assert not bad


def vars_terms(obj: object) -> list[Term]:
    """The Term-valued fields of a result dataclass."""
    return [v for v in (getattr(obj, f) for f in getattr(obj, "__slots__", ())) if isinstance(v, Term)]


def _walk(terms) -> list[Term]:
    out = []
    for t in terms:
        out.append(t)
        out.extend(_walk(t.parts))
    return out


@pytest.fixture(scope="module")
def estimate_terms() -> list[Term]:
    model = load_model("llama-2-7b")
    h100 = catalog.accelerator("h100-sxm-80gb")
    cluster = Cluster(accelerator=h100, gpus_per_node=8)
    terms: list[Term] = []
    for method in (Method.FULL, Method.LORA, Method.QLORA):
        job = TrainingJob(method=method, micro_batch_size=1, seq_len=2048)
        for gpus, layout in (
            (1, Layout()),
            (4, Layout(dp=4, zero=ZeroStage.PARAMETERS)),
            (4, Layout(tp=2, pp=2)),
        ):
            est = estimate_training(model, job, layout, Cluster(accelerator=h100, gpus_per_node=gpus))
            terms += explain_training(est)
        t = estimate_time(model, job, Layout(dp=8, zero=ZeroStage.OPTIMIZER), cluster)
        terms += [*t.step.terms, *t.comm]
    for engine in (Engine.HF, Engine.VLLM):
        inf = estimate_inference(model, InferenceJob(context_len=1024, engine=engine), cluster)
        terms += [*inf.terms.terms, *vars_terms(inf.speed)]
    work = Workload(
        input_len=LengthDist.of("input_len", 512),
        output_len=LengthDist.of("output_len", 64),
        concurrency=8,
        num_requests=50,
    )
    plan = plan_serving(
        load_model("llama-3.1-8b"), InferenceJob(context_len=576), cluster, ServingEngine.VLLM, context=576
    )
    terms.append(plan.run(work).step)
    return _walk(terms)


def test_every_returned_source_resolves(estimate_terms):
    cited = [t for t in estimate_terms if CITATION.search(t.source)]
    assert len(cited) > 10
    bad = {t.name: unresolved(t.source) for t in cited if unresolved(t.source)}
    assert not bad
