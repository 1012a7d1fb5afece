"""The web API answers what the CLI prints (`--json`, byte for byte), and refuses bad bodies with a 4xx that
names the field: never a 500 (a few dozen malformed bodies), 413 over 1 MiB, no local files, no hub fetch
without --allow-hub, no CORS unless asked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from llmplan.cli import main  # noqa: E402
from llmplan.web.app import MAX_BODY_BYTES, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny-llama" / "config.json"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        yield c


def cli_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_train_is_the_cli_json(client, capsys):
    body = {"model": "llama-3.1-8b", "micro_batch": 2, "seq_len": 4096, "zero": 3, "gpus": 8, "tokens": "10B"}
    r = client.post("/api/train", json=body)
    assert r.status_code == 200
    assert r.json() == cli_json(
        capsys, "train", "llama-3.1-8b", "--micro-batch", "2", "--seq", "4096", "--zero", "3", "--gpus", "8",
        "--tokens", "10B",
    )  # fmt: skip
    assert r.headers["server-timing"].startswith("app;dur=")


def test_train_that_does_not_fit_has_the_cli_suggestions(client, capsys):
    r = client.post("/api/train", json={"model": "llama-3.1-8b", "gpu": "a100-40gb"})
    want = cli_json(capsys, "train", "llama-3.1-8b", "--gpu", "a100-40gb")
    assert r.json() == want and not want["fits"] and want["suggestions"]


def test_serve_and_emit_are_the_cli_outputs(client, capsys):
    r = client.post("/api/serve", json={"model": "llama-3.1-8b", "gpu": "h100", "quant": "fp8", "tp": 2})
    assert r.json() == cli_json(capsys, "serve", "llama-3.1-8b", "--gpu", "h100", "--quant", "fp8", "--tp", "2")
    r = client.post("/api/emit", json={"model": "llama-2-7b", "zero": 3, "gpus": 8, "target": "deepspeed"})
    assert main(["emit", "deepspeed", "llama-2-7b", "--zero", "3", "--gpus", "8"]) == 0
    out = capsys.readouterr()
    assert r.json()["text"] == out.out and r.json()["launch"] in out.err


def test_plan_is_the_cli_json(client, capsys):
    body = {"model": "llama-3.2-1b", "gpus": "8", "tp": 1, "pp": 1, "cp": 1, "no_offload": True, "top": 3}
    r = client.post("/api/plan", json=body)
    assert r.status_code == 200, r.text
    want = cli_json(
        capsys, "plan", "llama-3.2-1b", "--gpus", "8", "--tp", "1", "--pp", "1", "--cp", "1", "--no-offload",
        "--top", "3",
    )  # fmt: skip
    got = r.json()
    for doc in (got, want):  # the search's own wall time differs between runs
        doc["plan"].pop("elapsed_s", None)
    assert got == want
    charts = client.post("/api/charts/plan", json=body).json()
    assert "plan_layouts" in [c["id"] for c in charts["charts"]]


def test_charts_are_the_plot_data(client):
    from llmplan.charts import Charts

    r = client.post("/api/charts/train", json={"model": "llama-3.2-1b", "seq_len": 1024})
    ids = [c.id for c in Charts.model_validate(r.json()).charts]
    assert {"memory", "memory_vs_seq_len", "memory_vs_micro_batch", "step_time"} <= set(ids)
    serve = client.post("/api/charts/serve", json={"model": "llama-3.2-1b", "gpu": "l4"}).json()
    assert any(c["id"].startswith("kv") for c in serve["charts"])


def test_catalog_endpoints(client, capsys):
    assert client.get("/api/models").json() == cli_json(capsys, "models")
    assert client.get("/api/gpus").json() == cli_json(capsys, "gpus")
    assert client.get("/docs").status_code == 200
    assert "/api/train" in client.get("/openapi.json").json()["paths"]


def test_uploaded_config_is_data(client, capsys):
    r = client.post("/api/train", json={"config": TINY.read_text()})
    assert r.status_code == 200
    assert r.json()["device_bytes"] == cli_json(capsys, "train", str(TINY))["device_bytes"]
    r = client.post("/api/train", json={"config": '{"model_type": "llama", "auto_map": {"x": "evil.py"}'})
    assert r.status_code == 400 and r.json()["field"] == "model"


@pytest.mark.parametrize(
    "ref", ["/etc/passwd", str(TINY), "../examples/tiny-llama", "someone/some-model", "", " "]
)
def test_no_local_file_and_no_hub_by_default(client, ref):
    r = client.post("/api/train", json={"model": ref})
    assert r.status_code == 400 and r.json()["field"] == "model"


def test_hub_id_of_a_catalog_model_is_offline(client):
    assert client.post("/api/train", json={"model": "meta-llama/Llama-2-7b-hf"}).status_code == 200


def test_body_limit(client):
    big = json.dumps({"config": "x" * (MAX_BODY_BYTES + 10)})
    assert client.post("/api/train", content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the bytes read are counted
        for _ in range(20):
            yield b" " * (MAX_BODY_BYTES // 10)

    r = client.post("/api/train", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["message"]


BAD_BODIES = [
    {"model": "llama-3.2-1b", "micro_batch": 0},
    {"model": "llama-3.2-1b", "micro_batch": -1},
    {"model": "llama-3.2-1b", "micro_batch": 10**30},
    {"model": "llama-3.2-1b", "micro_batch": "many"},
    {"model": "llama-3.2-1b", "micro_batch": 1.5},
    {"model": "llama-3.2-1b", "micro_batch": None},
    {"model": "llama-3.2-1b", "micro_batch": [1]},
    {"model": "llama-3.2-1b", "seq_len": 2**40},
    {"model": "llama-3.2-1b", "seq_len": 0},
    {"model": "llama-3.2-1b", "lora_alpha": "NaN"},
    {"model": "llama-3.2-1b", "lora_alpha": "Infinity"},
    {"model": "llama-3.2-1b", "lora_dropout": 2.0},
    {"model": "llama-3.2-1b", "method": "magic"},
    {"model": "llama-3.2-1b", "method": "lora", "lora_targets": "q_proj;rm -rf"},
    {"model": "llama-3.2-1b", "precision": 16},
    {"model": "llama-3.2-1b", "zero": 4},
    {"model": "llama-3.2-1b", "zero": 3, "fsdp": "full-shard"},
    {"model": "llama-3.2-1b", "gpus": 3, "tp": 2},
    {"model": "llama-3.2-1b", "gpus": 0},
    {"model": "llama-3.2-1b", "gpus": 10**9},
    {"model": "llama-3.2-1b", "tp": 3},
    {"model": "llama-3.2-1b", "pp": 1000},
    {"model": "llama-3.2-1b", "gpu": "tpu-v99"},
    {"model": "llama-3.2-1b", "gpu": "x" * 5000},
    {"model": "llama-3.2-1b", "cluster_id": "nowhere"},
    {"model": "llama-3.2-1b", "tokens": "lots"},
    {"model": "llama-3.2-1b", "tokens": "1e400"},
    {"model": "llama-3.2-1b", "tokens": "1T", "epochs": 2},
    {"model": "llama-3.2-1b", "price": -1},
    {"model": "llama-3.2-1b", "nodes": 0},
    {"model": "llama-3.2-1b", "virtual_stages": 0},
    {"model": "llama-3.2-1b", "unknown_option": 1},
    {"model": "llama-3.2-1b", "config": "{}"},
    {"model": 7},
    {"model": "no-such-model"},
    {"config": "[]"},
    {"config": "{" * 100000},
    {"config": '{"model_type": "llama", "hidden_size": 1e300}'},
    {"config": '{"model_type": "llama", "hidden_size": NaN}'},
    {"config": '{"model_type": "nonesuch"}'},
    {},
    [],
    "llama",
    None,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_body_gets_a_4xx_naming_the_field(client, body):
    r = client.post("/api/train", json=body)
    assert 400 <= r.status_code < 500, r.text
    doc = r.json()
    assert doc["message"] and doc["field"], doc


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/serve", {"model": "llama-3.2-1b", "context": 0}),
        ("/api/serve", {"model": "llama-3.2-1b", "prompt": 9000, "context": 4096}),
        ("/api/serve", {"model": "llama-3.2-1b", "quant": "int3"}),
        ("/api/serve", {"model": "llama-3.2-1b", "gpu_memory_utilization": 1.5}),
        ("/api/serve", {"model": "llama-3.2-1b", "ep": 2}),
        ("/api/serve", {"model": "llama-3.2-1b", "input_len": 100}),
        ("/api/plan", {"model": "llama-3.2-1b", "gpus": "eight"}),
        ("/api/plan", {"model": "llama-3.2-1b", "top": 0}),
        ("/api/plan", {"model": "llama-3.2-1b", "gpus": "8", "tp": 3}),
        ("/api/plan", {"model": "llama-3.2-1b", "budget_usd": -5}),
        ("/api/emit", {"model": "llama-3.2-1b", "target": "slurm"}),
        ("/api/emit", {"model": "llama-3.2-1b", "target": "deepspeed", "tp": 2, "gpus": 2}),
    ],
)
def test_bad_bodies_of_the_other_endpoints(client, path, body):
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["field"]


def test_malformed_json_and_wrong_methods(client):
    r = client.post("/api/train", content=b'{"model": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/train").status_code == 405
    assert client.get("/api/nothing").status_code == 404


def test_no_cors_unless_asked():
    origin = {"origin": "http://evil.example"}
    with TestClient(create_app()) as c:
        assert "access-control-allow-origin" not in c.get("/api/gpus", headers=origin).headers
    with TestClient(create_app(cors_origin="http://ok.example")) as c:
        assert c.get("/api/gpus", headers={"origin": "http://ok.example"}).headers[
            "access-control-allow-origin"
        ] == "http://ok.example"
        assert "access-control-allow-origin" not in c.get("/api/gpus", headers=origin).headers


def test_cli_web_refuses_bad_options(capsys):
    assert main(["web", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["web", "--cors", "*"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_web_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## In a browser", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()[0].split("#", 1)[0].strip()


def test_readme_command_starts_the_server_on_loopback():
    """The README's `llmplan web` line, as written (plus a free --port: the last one wins)."""
    import httpx

    words = readme_web_command().split()
    assert words[0].endswith("llmplan") and words[1] == "web"
    port = _free_port()
    cmd = [sys.executable, "-m", "llmplan", *words[1:], "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/gpus", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not answer within 60 s"
                time.sleep(0.3)
        assert r.status_code == 200 and r.json()["command"] == "gpus"
        assert "llmplan" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_worker_processes_give_the_same_answers(client):
    """`llmplan web --workers N` computes in other processes: same bytes, same errors."""
    body = {"model": "llama-3.2-1b", "micro_batch": 4, "method": "lora"}
    with TestClient(create_app(workers=1)) as c:
        assert c.post("/api/train", json=body).content == client.post("/api/train", json=body).content
        assert c.post("/api/charts/serve", json={"model": "llama-3.2-1b"}).json()["command"] == "serve"
        bad = c.post("/api/train", json={"model": "llama-3.2-1b", "seq_len": 0})
        assert bad.status_code == 400 and bad.json()["field"] == "seq_len"
