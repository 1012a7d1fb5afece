"""`llmplan emit peft`: the adapter_config.json rebuilt by peft's own config class and applied with
`get_peft_model` to the transformers model built on the meta device from the catalog config; the trainable
count peft reports equals the plan's `trainable_params`, and the config read back gives the plan's fields."""

from __future__ import annotations

import json

import pytest

from llmplan import catalog
from llmplan.emit import EmitError
from llmplan.emit import peft as peft_emit
from llmplan.estimate.training import estimate_training
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import Layout, Method, PeftSpec, TrainingJob

CLUSTER = Cluster(accelerator=catalog.accelerator("h100"), gpus_per_node=1, nodes=1)

PLANS = {
    "lora-qv": ("llama-3.2-1b", TrainingJob(method=Method.LORA)),
    "qlora-all-linear": (
        "llama-3.2-1b",
        TrainingJob(method=Method.QLORA, peft=PeftSpec(lora_rank=64, lora_targets=("all-linear",))),
    ),
    "dora-dropout": (
        "qwen2.5-0.5b",
        TrainingJob(
            method=Method.DORA,
            peft=PeftSpec(lora_rank=16, lora_alpha=32, lora_dropout=0.05, lora_targets=("q_proj", "o_proj")),
        ),
    ),
    "prompt": ("llama-3.2-1b", TrainingJob(method=Method.PROMPT, peft=PeftSpec(num_virtual_tokens=32))),
    "ptuning-v2": ("qwen2.5-0.5b", TrainingJob(method=Method.PTUNING_V2)),
    "ptuning": ("llama-3.2-1b", TrainingJob(method=Method.PTUNING, peft=PeftSpec(num_virtual_tokens=10))),
}


@pytest.mark.parametrize("name", PLANS)
def test_peft_builds_the_planned_adapter(name: str) -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from llmplan.trace.build import build_model

    model_id, job = PLANS[name]
    spec = load_model(model_id)
    data = json.loads(peft_emit.launch(spec, job).text)
    kind = data.pop("peft_type")
    cfg = getattr(peft, peft_emit.CONFIG_CLASSES[kind])(**data)
    assert cfg.peft_type.value == kind
    for key, value in data.items():  # peft's view of every key is the plan's
        seen = getattr(cfg, key)
        seen = sorted(seen) if isinstance(seen, set) else getattr(seen, "value", seen)
        assert seen == (sorted(value) if isinstance(value, list) else value), key
    with torch.device("meta"):
        model = build_model(spec, dtype="bfloat16", attention="sdpa")
    wrapped = peft.get_peft_model(model, cfg)
    trainable, _ = wrapped.get_nb_trainable_parameters()
    est = estimate_training(spec, job, Layout(), CLUSTER)
    assert trainable == est.trainable_params


@pytest.mark.parametrize("name", PLANS)
def test_read_back_gives_the_plan(name: str) -> None:
    model_id, job = PLANS[name]
    spec = load_model(model_id)
    back = peft_emit.read(peft_emit.config(spec, job), "a.json", job.method, spec.hidden_size)
    assert back.method is job.method
    if job.method in (Method.LORA, Method.QLORA, Method.DORA):
        p = job.peft
        assert (back.lora_rank, back.lora_alpha, back.lora_dropout) == (
            p.lora_rank,
            p.lora_alpha,
            p.lora_dropout,
        )
        assert back.lora_targets == ",".join(p.lora_targets)
    else:
        assert back.num_virtual_tokens == job.peft.num_virtual_tokens


@pytest.mark.parametrize("method", [Method.FULL, Method.ADALORA, Method.IA3, Method.BITFIT])
def test_refuses_methods_without_a_written_config(method: Method) -> None:
    with pytest.raises(EmitError, match=r"^peft: method: "):
        peft_emit.config(load_model("llama-3.2-1b"), TrainingJob(method=method))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"peft_type": "IA3"}, "peft_type"),
        ({"peft_type": "LORA", "r": "8", "lora_alpha": 16, "target_modules": ["q_proj"]}, "r"),
        ({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": None}, "target_modules"),
        ({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q"], "bias": "all"}, "bias"),
        (
            {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 8, "prefix_projection": True},
            "prefix_projection",
        ),
        ({"peft_type": "P_TUNING", "num_virtual_tokens": 8, "encoder_hidden_size": 7}, "encoder_hidden_size"),
    ],
)
def test_unreadable_adapter_config_names_the_key(data: dict, key: str) -> None:
    with pytest.raises(Exception, match=f"key '{key}'"):
        peft_emit.read(data, "a.json", Method.LORA, 2048)
