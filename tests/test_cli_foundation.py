"""`llmplan models`, `gpus`, `params`: output, JSON, and one clear line with exit code 2 for each bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmplan import catalog
from llmplan.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_params_json_total_is_an_int(capsys, write_config, llama7b_config):
    code, out, _ = run(capsys, "params", str(write_config(llama7b_config)), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["total"] == 6_738_415_616
    assert isinstance(data["params"]["attention"], int)


def test_params_table(capsys, write_config, llama7b_config):
    code, out, _ = run(capsys, "params", str(write_config(llama7b_config)))
    assert code == 0
    assert "6,738,415,616" in out


def test_params_of_a_model_folder(capsys, write_config, llama7b_config):
    path = write_config(llama7b_config)
    code, out, _ = run(capsys, "params", str(path.parent), "--json")
    assert code == 0 and json.loads(out)["total"] == 6_738_415_616


@pytest.mark.skipif(not catalog.model_ids(), reason="model catalog empty")
def test_models_lists_the_catalog_as_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = json.loads(out)["models"]
    assert len(rows) >= 50
    assert all(isinstance(r["params"], int) and r["source"] and r["read_on"] for r in rows)


@pytest.mark.skipif(not catalog.model_ids(), reason="model catalog empty")
def test_models_filters_by_family_and_size(capsys):
    code, out, _ = run(capsys, "models", "--family", "llama", "--max-b", "10", "--json")
    assert code == 0
    rows = json.loads(out)["models"]
    assert rows and all("llama" in (r["family"] + r["id"]) and r["params"] <= 10e9 for r in rows)


def test_gpus_json(capsys):
    code, out, _ = run(capsys, "gpus", "--json")
    assert code == 0
    rows = json.loads(out)["gpus"]
    assert len(rows) >= 30
    assert all(isinstance(r["memory_bytes"], int) for r in rows)


BAD_INPUTS = [
    ("malformed", '{"model_type": "llama", "hidden_size": 64', "not valid JSON"),
    ("list", "[1, 2]", "not an object"),
    ("no-type", {"hidden_size": 64}, "model_type"),
    ("unknown-type", {"model_type": "not-a-model"}, "supported"),
    ("missing-field", {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}, "missing"),
    ("zero", {**{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 0,
                 "vocab_size": 100, "intermediate_size": 128}}, "num_hidden_layers"),
    ("negative", {"model_type": "llama", "hidden_size": -64, "num_attention_heads": 4, "num_hidden_layers": 2,
                  "vocab_size": 100, "intermediate_size": 128}, "hidden_size"),
    ("heads", {"model_type": "llama", "hidden_size": 100, "num_attention_heads": 3, "num_hidden_layers": 2,
               "vocab_size": 100, "intermediate_size": 128}, "num_attention_heads"),
    ("kv-heads", {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3,
                  "num_hidden_layers": 2, "vocab_size": 100, "intermediate_size": 128}, "num_key_value_heads"),
    ("string-size", {"model_type": "llama", "hidden_size": "big", "num_attention_heads": 4, "num_hidden_layers": 2,
                     "vocab_size": 100, "intermediate_size": 128}, "hidden_size"),
]


@pytest.mark.parametrize(("case", "content", "needle"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_config_gives_one_line_and_exit_2(capsys, write_config, case, content, needle):
    code, out, err = run(capsys, "params", str(write_config(content)))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_missing_file(capsys):
    code, _, err = run(capsys, "params", "./no/such/config.json")
    assert code == 2 and "no such file" in err


@pytest.mark.skipif(not catalog.model_ids(), reason="model catalog empty")
def test_unknown_id_suggests_the_closest(capsys):
    code, _, err = run(capsys, "params", "llama-2-7")
    assert code == 2 and "llama-2-7b" in err


def test_unknown_gpu_suggests_the_closest():
    with pytest.raises(Exception) as info:
        catalog.accelerator("h100-sxm-80g")
    assert "h100" in str(info.value)


def test_hub_id_offline_says_to_pass_a_local_file():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "llmplan", "params", "some-org/some-unknown-model"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 2
    assert "local" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_negative_size_filter(capsys):
    code, _, err = run(capsys, "models", "--min-b", "-1")
    assert code == 2 and "--min-b" in err


def test_core_imports_without_torch():
    code = "import sys, llmplan, llmplan.cli; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.parametrize(
    "args",
    [["params", "llama-2-7b", "--bogus"], ["params"], ["models", "--min-b", "abc"], ["no-such-command"]],
    ids=["unknown-option", "missing-argument", "not-a-number", "unknown-command"],
)
def test_usage_errors_exit_2_without_traceback(capsys, args):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and "allowed" in err and len(err.strip().splitlines()) == 1
