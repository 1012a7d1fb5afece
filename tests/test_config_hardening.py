"""Config parsing is hardened: size, depth and number limits before parsing; per-field types and bounds with the
field's path; rules across fields; a hub id without network fails fast saying "offline"."""

from __future__ import annotations

import json
import socket
import time

import pytest

from llmplan import loading
from llmplan.adapters import parse_config
from llmplan.cli import main
from llmplan.errors import LlmplanError, SpecError

BASE = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}


def error_of(capsys, write_config, content) -> str:
    code = main(["params", str(write_config(content))])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({**BASE, "model_type": ["llama"]}, "model_type: ['llama'] in"),
        ({**BASE, "model_type": 7}, "model_type: 7 in"),
        (json.dumps(BASE)[:-1] + ', "vocab_size": ' + "9" * 5000 + "}", "vocab_size: <a 5000-digit integer>"),
        ('{"model_type": "llama", "x": ' + "[" * 5000 + "]" * 5000 + "}", "nested more than 64 deep"),
        ({**BASE, "num_hidden_layers": 1_000_000}, "num_hidden_layers: 1000000 in"),
        ({**BASE, "num_hidden_layers": 1e9}, "num_hidden_layers: 1000000000.0 in"),
        ({**BASE, "hidden_size": 1e30}, "hidden_size: 1e+30 in"),
        ({**BASE, "hidden_size": "4096"}, "hidden_size: '4096' in"),
        ({**BASE, "hidden_size": True}, "hidden_size: True in"),
        ({**BASE, "hidden_size": 0}, "hidden_size: 0 in"),
        (
            {**BASE, "num_key_value_heads": 64},
            "num_attention_heads: 32 is not divisible by num_key_value_heads=64",
        ),
        (json.dumps(BASE)[:-1] + ', "rope_theta": NaN}', "NaN, which is not JSON"),
        (json.dumps(BASE)[:-1] + ', "rope_theta": 1e400}', "rope_theta: inf in"),
        ({**BASE, "rope_scaling": {"type": "linear", "factor": "x"}}, "rope_scaling.factor: 'x' in"),
        ({**BASE, "rope_scaling": [1, 2]}, "rope_scaling: [1, 2] in"),
        ({"model_type": "gemma3", "text_config": {**BASE, "hidden_size": -1}}, "text_config.hidden_size: -1"),
        (
            {**BASE, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 9},
            "num_experts_per_tok: 9 in",
        ),
        (
            {
                **BASE,
                "model_type": "qwen2_moe",
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 64,
                "shared_expert_intermediate_size": 64,
                "mlp_only_layers": "x",
            },
            "mlp_only_layers: 'x' in",
        ),  # fmt: skip
        (
            {
                **BASE,
                "hidden_size": 1_000_000,
                "intermediate_size": 4_000_000,
                "num_hidden_layers": 4_000,
                "num_attention_heads": 1000,
                "num_key_value_heads": 1000,
            },
            "parameters (allowed: up to 1e+15",
        ),  # fmt: skip
        ("[1, 2]", "holds a JSON list, not an object"),
        ("{", "is not valid JSON"),
        ("", "is not valid JSON"),
    ],
)
def test_bad_config_one_line_naming_the_field(capsys, write_config, content, expected):
    assert expected in error_of(capsys, write_config, content)


def test_oversized_file_refused_before_reading(capsys, write_config):
    err = error_of(capsys, write_config, '{"model_type": "llama", "pad": "' + "x" * (5 * 2**20) + '"}')
    assert "bytes (allowed: a config.json of at most" in err


def test_not_utf8(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "\xff"}')
    assert main(["params", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_a_10t_moe_with_10m_context_is_valid():
    config = {
        **BASE,
        "model_type": "deepseek_v3",
        "hidden_size": 16384,
        "num_hidden_layers": 128,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "vocab_size": 262144,
        "max_position_embeddings": 10_000_000,
        "n_routed_experts": 2048,
        "n_shared_experts": 1,
        "num_experts_per_tok": 16,
        "moe_intermediate_size": 4096,
        "intermediate_size": 32768,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
    }
    spec = loading.checked(parse_config(config, "big-moe"))
    from llmplan.formulas.params import count_params

    assert count_params(spec).total > 10e12
    assert spec.max_position_embeddings == 10_000_000


def test_hub_offline_env_fails_at_once_saying_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(LlmplanError, match="offline.*HF_HUB_OFFLINE.*local config.json") as info:
        loading.load_model("someorg/not-in-catalog")
    assert time.perf_counter() - start < 2
    assert "has no config.json" not in str(info.value)


def test_hub_black_hole_network_fails_within_2_s(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def black_hole(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(socket, "create_connection", black_hole)
    start = time.perf_counter()
    with pytest.raises(LlmplanError, match="offline .*cannot be reached.*local config.json"):
        loading.load_model("someorg/not-in-catalog")
    assert time.perf_counter() - start < 2


def test_network_failure_is_never_blamed_on_the_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_reachable", lambda: True)

    def failing(*args, **kwargs):
        if kwargs.get("local_files_only"):
            raise FileNotFoundError("not cached")
        raise ConnectionError("reset by peer")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(LlmplanError) as info:
        loading.load_model("someorg/not-in-catalog")
    text = str(info.value)
    assert "network failed" in text and "ConnectionError" in text and "has no config.json" not in text


def test_catalog_hub_id_needs_no_network(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("no net")))
    assert loading.load_model("meta-llama/Llama-2-7b-hf").num_hidden_layers == 32


def test_spec_error_names_the_path():
    with pytest.raises(SpecError) as info:
        parse_config({"model_type": "gemma3", "text_config": {**BASE, "vocab_size": 2**40}}, "x")
    assert info.value.field == "text_config.vocab_size"
