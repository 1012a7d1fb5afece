"""Shared fixtures: small configs built inline (no network, no catalog needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LLAMA_2_7B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
}


@pytest.fixture
def llama7b_config() -> dict:
    return dict(LLAMA_2_7B)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a dict (or raw text) as config.json in a fresh folder and return the file's path."""

    def write(content: dict | str, name: str = "config.json") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return path

    return write
