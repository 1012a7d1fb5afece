"""What the trace refuses, and how: missing torch, models transformers cannot build, jobs it cannot express."""

from __future__ import annotations

import importlib
import json
from dataclasses import replace

import pytest

from llmplan.adapters import parse_config
from llmplan.cli import main
from llmplan.errors import LlmplanError, MissingExtraError, UnsupportedModelError
from llmplan.specs.training import Layout, Method, OffloadTarget, Precision, TrainingJob, ZeroStage
from llmplan.trace import build, trace_training

pytestmark = pytest.mark.trace

TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 512,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}


@pytest.fixture
def tiny():
    return parse_config(dict(TINY), "tiny-llama")


def test_missing_torch_names_the_trace_extra(tiny, monkeypatch):
    real = importlib.import_module

    def no_torch(name, *args, **kwargs):
        if name.split(".")[0] in ("torch", "transformers", "peft"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(build.importlib, "import_module", no_torch)
    with pytest.raises(MissingExtraError, match=r"llmplan\[trace\]"):
        trace_training(tiny, TrainingJob(seq_len=16))


def test_non_native_model_points_to_the_analytic_engine(tiny):
    remote = replace(tiny, native_transformers=False, model_type="chatglm", name="chatglm3-6b")
    with pytest.raises(UnsupportedModelError, match="analytic engine"):
        trace_training(remote, TrainingJob(seq_len=16))


@pytest.mark.parametrize(
    ("job", "layout", "match"),
    [
        (TrainingJob(method=Method.ADAPTER_HOULSBY), None, "Houlsby"),
        (TrainingJob(precision=Precision.FP8_MIXED), None, "fp8"),
        (TrainingJob(chunked_ce=True), None, "chunked"),
        (TrainingJob(), Layout(pp=2), "pipeline"),
        (TrainingJob(), Layout(dp=2, zero=ZeroStage.OPTIMIZER), "ZeRO"),
        (TrainingJob(), Layout(dp=2, zero=ZeroStage.PARAMETERS, offload_optimizer=OffloadTarget.CPU), "ZeRO"),
    ],
)
def test_untraceable_jobs_say_so(tiny, job, layout, match):
    pytest.importorskip("torch")
    with pytest.raises(LlmplanError, match=match):
        trace_training(tiny, job, layout=layout)


def test_cli_trace_json(write_config, capsys):
    pytest.importorskip("torch")
    path = write_config(dict(TINY))
    assert main(["trace", str(path), "--seq-len", "16", "--precision", "bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    peak = out["trace"]["peak"]
    assert out["trace"]["total"] == peak["total"] == sum(t["value"] for t in peak["terms"])
    assert [t["name"] for t in peak["terms"]][:2] == ["weights", "master_weights"]
    assert out["trace"]["peak_phase"] == "optimizer"


def test_cli_trace_infer_beside_analytic(write_config, capsys):
    pytest.importorskip("torch")
    path = write_config(dict(TINY))
    assert main(["trace", str(path), "--infer", "--prompt", "32", "--decode-steps", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    terms = {t["term"]: t for t in out["analytic"]["terms"]}
    assert terms["weights"]["trace_bytes"] >= terms["weights"]["analytic_bytes"]
    assert out["trace"]["mode"] == "infer"


def test_cli_measure_without_cuda(write_config, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    path = write_config(dict(TINY))
    assert main(["measure", str(path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
