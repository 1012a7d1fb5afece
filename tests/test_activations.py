"""Activation bytes of a training step: traced reference values, invariants, and a fast trace comparison.

Reference values were measured on 2026-11-23 (torch 2.13.0 CPU, transformers 5.23, peft 0.21) by summing the
storages of the tensors autograd saves (`torch.autograd.graph.saved_tensors_hooks`, deduplicated by storage,
parameters excluded) per decoder layer of the real model built on fake tensors; `test_formula_matches_trace`
repeats that measurement for a subset. Layer 1 is the reference layer (layer 0 also holds the shared RoPE
tables, which llmplan counts on the embedding side).
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import LLAMA_2_7B

from llmplan.adapters import parse_config
from llmplan.formulas.activations import ActivationBreakdown, training_activations
from llmplan.formulas.peft import lora_target_linears
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import (
    AttentionImpl,
    Layout,
    Method,
    PeftSpec,
    PipelineSchedule,
    Precision,
    Recompute,
    TrainingJob,
)
from llmplan.units import GIB

SMALL = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_attention_heads": 8,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
}
CONFIGS = {
    "llama": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **SMALL,
        "num_key_value_heads": 8,
        "tie_word_embeddings": False,
    },
    "llama_gqa": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **SMALL,
        "num_key_value_heads": 2,
        "tie_word_embeddings": False,
    },
    "qwen2": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        **SMALL,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
    },
    "mistral": {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        **SMALL,
        "num_key_value_heads": 2,
        "sliding_window": 64,
    },
    "gemma2": {
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        **SMALL,
        "num_key_value_heads": 4,
        "head_dim": 32,
        "sliding_window": 64,
        "query_pre_attn_scalar": 32,
    },
    "mixtral": {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        **SMALL,
        "intermediate_size": 384,
        "num_key_value_heads": 2,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    },
    "gpt2": {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": 256,
        "n_head": 8,
        "n_layer": 2,
        "vocab_size": 1000,
        "n_positions": 1024,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    },
}

CONFIGS |= {
    "qwen3": {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        **SMALL,
        "num_key_value_heads": 2,
        "head_dim": 32,
    },
    "gemma": {
        "architectures": ["GemmaForCausalLM"],
        "model_type": "gemma",
        **SMALL,
        "num_key_value_heads": 1,
        "head_dim": 32,
    },
    "qwen2_moe": {
        "architectures": ["Qwen2MoeForCausalLM"],
        "model_type": "qwen2_moe",
        **SMALL,
        "num_key_value_heads": 2,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 128,
        "shared_expert_intermediate_size": 256,
    },
    "deepseek_v2": {
        "architectures": ["DeepseekV2ForCausalLM"],
        "model_type": "deepseek_v2",
        **SMALL,
        "num_key_value_heads": 8,
        "kv_lora_rank": 64,
        "q_lora_rank": None,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "v_head_dim": 32,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 128,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "n_group": 1,
        "topk_group": 1,
    },
    "gpt_neox": {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_attention_heads": 8,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
        "rotary_pct": 0.25,
    },
    "falcon": {
        "architectures": ["FalconForCausalLM"],
        "model_type": "falcon",
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        "new_decoder_architecture": False,
        "multi_query": True,
        "parallel_attn": True,
        "bias": False,
    },
}

TRACED = "saved_tensors_hooks on FakeTensorMode, torch 2.13 / transformers 5.23 / peft 0.21, 2026-11-23"

# (config, attention, mode, batch, seq, traced bytes of decoder layer 1, tolerance, what it checks)
# mode: "full" (bf16-mixed), "ckpt" (full recompute), "lora_all" / "lora_qv" / "dora" (r16, alpha 32), "fp32",
# "amp" (torch.autocast bf16 over fp32 weights), "prompt" / "prefix" (8 virtual tokens)
LAYER_CASES = [
    ("llama", "sdpa", "full", 2, 128, 2_992_128, 0, "20h + 4·kv·d + 8I + 4a + 8 per token"),
    ("llama", "eager", "full", 2, 128, 4_556_800, 0, "24h + 8I + 6·a·s + 8: 6 bytes per score"),
    ("llama", "sdpa", "full", 1, 64, 748_032, 0, "linear in tokens"),
    ("llama_gqa", "sdpa", "full", 2, 128, 2_795_520, 0, "GQA: k, v at kv heads (enable_gqa)"),
    ("llama_gqa", "eager", "full", 2, 128, 4_556_800, 0, "GQA eager: repeat_kv copies at full heads"),
    ("qwen2", "sdpa", "full", 2, 128, 2_795_520, 0, "qkv biases save nothing more"),
    ("mistral", "sdpa", "full", 2, 128, 3_057_664, 0, "sliding window < s: sdpa gets a mask, repeat_kv"),
    ("mistral", "sdpa", "full", 2, 48, 1_048_320, 0, "window > s: no mask"),
    ("gemma2", "eager", "full", 2, 128, 6_397_952, 0, "4 fp32 norms, softcapping: 8 bytes per score"),
    ("mixtral", "sdpa", "full", 2, 128, 3_509_264, 1e-4, "router, top-2 routed SwiGLU (grouped_mm)"),
    ("gpt2", "sdpa", "full", 2, 128, 3_942_400, 1e-3, "LayerNorm, fused c_attn, gelu_new; CUDA rstd fp32"),
    ("gpt2", "eager", "full", 2, 128, 4_196_352, 1e-3, "no softmax upcast: 2 bytes per score"),
    ("llama", "sdpa", "ckpt", 2, 128, 131_072, 0, "full recompute keeps the layer input, e·h per token"),
    ("llama", "sdpa", "lora_all", 2, 128, 4_507_648, 0, "peft casts each adapted input to fp32"),
    ("llama", "sdpa", "lora_qv", 2, 128, 2_672_640, 0, "frozen linears save no input"),
    ("llama", "eager", "lora_all", 2, 128, 5_941_248, 0, "eager + LoRA"),
    ("mixtral", "sdpa", "lora_all", 2, 128, 6_935_568, 1e-4, "peft target_parameters: merged expert weights"),
    ("llama", "sdpa", "fp32", 2, 128, 5_449_728, 0, "fp32: every term at 4 bytes"),
    ("llama", "eager", "fp32", 2, 128, 6_490_112, 0, "fp32 eager: 4 bytes per score"),
    ("llama", "sdpa", "amp", 2, 128, 5_228_544, 0, "autocast: bf16 weight copies, per-linear input casts"),
    (
        "llama",
        "sdpa",
        "amp_lora_qv",
        2,
        128,
        4_007_936,
        0,
        "autocast + LoRA: frozen weights' casts saved too",
    ),
    # DoRA: 12,227,712 bytes pass through the pack hook, of which peft's eye(in) / lora_A(eye) graph
    # (3,608,576 bytes) is freed when each DoRA module returns (checked with weak references)
    ("llama", "sdpa", "dora", 2, 128, 8_619_136, 0, "DoRA: base and LoRA results, column norms"),
    ("llama", "sdpa", "prompt", 2, 128, 2_247_808, 0, "prompt tuning, 8 virtual tokens: longer sequences"),
    ("llama", "sdpa", "prefix", 2, 128, 2_217_984, 1e-2, "prefix tuning: k/v 8 longer, sdpa gets a mask"),
    ("llama", "eager", "prefix", 2, 128, 3_680_256, 1e-2, "prefix tuning, eager: s x (s + 8) scores"),
    ("qwen3", "sdpa", "full", 2, 128, 3_297_280, 0, "per-head q_norm / k_norm"),
    ("gemma", "sdpa", "full", 2, 128, 3_026_944, 0, "MQA, GeGLU, fp32 (1 + w) norms"),
    ("qwen2_moe", "sdpa", "full", 2, 128, 3_112_464, 2e-3, "shared expert with sigmoid gate"),
    ("deepseek_v2", "eager", "full", 2, 128, 5_010_448, 1e-3, "MLA, fp32 router, shared expert"),
    ("gpt_neox", "sdpa", "full", 2, 128, 2_107_392, 2e-3, "parallel residual: both LNs read one input"),
    ("gpt_neox", "eager", "full", 2, 128, 3_540_992, 1e-3, "fused qkv with RoPE: separate q, k, v"),
    ("falcon", "eager", "full", 2, 128, 2_360_336, 1e-3, "one LN for attention and MLP, MQA, bf16 softmax"),
]


def spec_of(name: str) -> ModelSpec:
    return parse_config(CONFIGS[name], name)


def job_of(
    spec: ModelSpec, attention: str, mode: str, batch: int, seq: int
) -> tuple[TrainingJob, frozenset[str]]:
    kw: dict = {"micro_batch_size": batch, "seq_len": seq, "attention": AttentionImpl(attention)}
    adapted: frozenset[str] = frozenset()
    if mode == "ckpt":
        kw["recompute"] = Recompute.FULL
    if mode in ("prompt", "prefix"):
        kw["method"] = Method.PROMPT if mode == "prompt" else Method.PREFIX
        kw["peft"] = PeftSpec(num_virtual_tokens=8)
    if mode.startswith(("lora", "amp_lora")) or mode == "dora":
        targets = ("all-linear",) if mode in ("lora_all", "dora") else ("q_proj", "v_proj")
        kw["method"] = Method.DORA if mode == "dora" else Method.LORA
        kw["peft"] = PeftSpec(lora_rank=16, lora_targets=targets)
        adapted = frozenset(lin.leaf_name for _, lin in lora_target_linears(spec, targets))
    if mode == "fp32":
        kw["precision"] = Precision.FP32
    if mode.startswith("amp"):
        kw["precision"] = Precision.AMP_BF16
    return TrainingJob(**kw), adapted


def layer1_bytes(spec: ModelSpec, job: TrainingJob, adapted: frozenset[str]) -> int:
    """Layer 1's bytes: the whole model's layers minus a one-layer model's (same job)."""
    one = dataclasses.replace(spec, num_hidden_layers=1, layers=spec.layers[:1])
    two = dataclasses.replace(spec, num_hidden_layers=2, layers=spec.layers[:2])
    return (
        training_activations(two, job, Layout(), adapted).layers_bytes
        - training_activations(one, job, Layout(), adapted).layers_bytes
    )


@pytest.mark.parametrize(("name", "attention", "mode", "batch", "seq", "traced", "rel", "note"), LAYER_CASES)
def test_layer_bytes_equal_traced(name, attention, mode, batch, seq, traced, rel, note) -> None:
    spec = spec_of(name)
    job, adapted = job_of(spec, attention, mode, batch, seq)
    assert layer1_bytes(spec, job, adapted) == pytest.approx(traced, rel=rel, abs=0), f"{note} ({TRACED})"


def test_llama2_7b_layer_and_totals() -> None:
    """Llama-2-7B, bf16, batch 1 x 2048, sdpa. Layer: traced exactly (381,960,192 bytes = 45.5 bytes per token
    per hidden unit). Totals vs design.md's MemTracker figures (11.9 GiB full, 17.3 GiB LoRA r16 all-linear),
    which count live tensors rather than saved ones, within 2 %."""
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    full = training_activations(spec, TrainingJob(seq_len=2048), Layout())
    assert full.per_layer_bytes == 381_960_192
    assert full.total / GIB == pytest.approx(11.9, rel=0.02)
    targets = ("all-linear",)
    adapted = frozenset(lin.leaf_name for _, lin in lora_target_linears(spec, targets))
    lora_job = TrainingJob(
        method=Method.LORA, seq_len=2048, peft=PeftSpec(lora_rank=16, lora_targets=targets)
    )
    lora = training_activations(spec, lora_job, Layout(), adapted)
    assert lora.total / GIB == pytest.approx(17.3, rel=0.02)
    ckpt = training_activations(spec, TrainingJob(seq_len=2048, recompute=Recompute.FULL), Layout())
    assert ckpt.layers_bytes == 32 * 2 * 2048 * 4096  # 2·s·h per layer


def test_logits_and_loss_llama2_7b() -> None:
    """bf16 logits (2·V) + fp32 log-softmax (4·V) + int64 labels per token, + the final norm and head input."""
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    b = training_activations(spec, TrainingJob(seq_len=2048), Layout())
    h, v, t = 4096, 32000, 2048
    assert b.logits_loss_bytes == t * (2 * v + 4 * v + 8) + 4 + t * (4 * h + 4 + 2 * h + 2 * h)
    assert b.backward_transient_bytes >= 8 * v * t  # two fp32 (T, V) gradients in the loss backward
    chunked = training_activations(spec, TrainingJob(seq_len=2048, chunked_ce=True), Layout())
    # no (T, V) tensor: the final norm, the head input and the head-input gradient (e·h) computed in forward
    assert chunked.logits_loss_bytes == t * (4 * h + 4 + 2 * h + 2 * h) + t * 2 * h + 4


def _total(spec: ModelSpec, layout: Layout | None = None, **job) -> ActivationBreakdown:
    return training_activations(spec, TrainingJob(**job), layout or Layout())


@pytest.mark.parametrize("name", ["llama", "llama_gqa", "mistral", "gemma2", "mixtral", "gpt2"])
@pytest.mark.parametrize("attention", [AttentionImpl.EAGER, AttentionImpl.SDPA])
def test_recompute_order(name: str, attention: AttentionImpl) -> None:
    spec = spec_of(name)
    none, sel, full = (
        _total(spec, attention=attention, recompute=r, seq_len=512).layers_bytes
        for r in (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
    )
    assert 0 < full <= sel <= none


@pytest.mark.parametrize("name", ["llama", "llama_gqa", "mistral", "gemma2", "mixtral", "gpt2"])
def test_sdpa_never_above_eager(name: str) -> None:
    spec = spec_of(name)
    # at very short sequences GPT-2's sdpa path (fused c_attn output kept whole) can exceed eager
    for seq in (512, 4096):
        sdpa = _total(spec, attention=AttentionImpl.SDPA, seq_len=seq)
        eager = _total(spec, attention=AttentionImpl.EAGER, seq_len=seq)
        assert sdpa.layers_bytes <= eager.layers_bytes
        assert _total(spec, attention=AttentionImpl.FLASH, seq_len=seq).layers_bytes <= eager.layers_bytes


def test_tensor_and_sequence_parallel_split() -> None:
    """Korthikanti et al. 2022, Table 2: tp alone splits all but the norms and replicated GEMM inputs; with
    sequence parallelism everything is split by t."""
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    one = _total(spec, seq_len=2048).layers_bytes
    tp = _total(spec, Layout(tp=4), seq_len=2048).layers_bytes
    sp = _total(spec, Layout(tp=4, sequence_parallel=True), seq_len=2048).layers_bytes
    assert sp == pytest.approx(one / 4, rel=1e-3)
    assert one / 4 < tp < one


def test_context_parallel_splits_tokens() -> None:
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    assert _total(spec, Layout(cp=2), seq_len=4096).layers_bytes == _total(spec, seq_len=2048).layers_bytes


def test_pipeline_schedules() -> None:
    """1F1B: stage 0 holds pp micro-batches of its L/pp layers = L layers' worth; GPipe: all m micro-batches;
    interleaved: (1 + (pp-1)/(pp·v)) times 1F1B (Korthikanti section 4.2.3)."""
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    layer = _total(spec, seq_len=2048).per_layer_bytes
    kw = {"seq_len": 2048, "grad_accum_steps": 16}
    one_f = _total(spec, Layout(pp=4), **kw)
    assert one_f.layers_bytes == 32 * layer
    gpipe = _total(spec, Layout(pp=4, pp_schedule=PipelineSchedule.GPIPE), **kw)
    assert gpipe.layers_bytes >= 16 * 8 * layer
    inter = _total(spec, Layout(pp=4, pp_schedule=PipelineSchedule.INTERLEAVED, pp_virtual_stages=2), **kw)
    assert inter.layers_bytes == 8 * layer * (4 * 2 + 3) // 2
    few = _total(spec, Layout(pp=4), seq_len=2048, grad_accum_steps=2)
    assert few.layers_bytes == 2 * 8 * layer


def test_offload_keeps_one_layer() -> None:
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    base = _total(spec, seq_len=2048)
    off = _total(spec, seq_len=2048, activation_offload=True)
    assert off.layers_bytes == base.per_layer_bytes
    assert off.host_bytes == base.layers_bytes - base.per_layer_bytes


def test_precision_and_freeze() -> None:
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    bf16 = _total(spec, seq_len=1024).layers_bytes
    assert _total(spec, seq_len=1024, precision=Precision.FP32).layers_bytes > 1.8 * bf16
    assert _total(spec, seq_len=1024, precision=Precision.FP8_MIXED).layers_bytes < bf16
    frozen = _total(spec, seq_len=1024, method=Method.FREEZE, peft=PeftSpec(freeze_layers=8)).layers_bytes
    # 24 trained layers; the first of them keeps no fp32 upcast in its input norm (its input needs no grad)
    assert frozen == bf16 * 24 // 32 - 1024 * (4 * 4096 + 4)


def test_prompt_and_prefix_lengthen_sequences() -> None:
    spec = parse_config(LLAMA_2_7B, "llama-2-7b")
    lora = _total(spec, seq_len=1024, method=Method.LORA, peft=PeftSpec(lora_targets=("q_proj",)))
    prompt = _total(spec, seq_len=1024, method=Method.PROMPT, peft=PeftSpec(num_virtual_tokens=64))
    prefix = _total(spec, seq_len=1024, method=Method.PREFIX, peft=PeftSpec(num_virtual_tokens=64))
    base_len = _total(spec, seq_len=1024, method=Method.PROMPT, peft=PeftSpec(num_virtual_tokens=1))
    assert prompt.total > base_len.total
    assert prefix.layers_bytes > 0 and lora.layers_bytes > 0


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("recompute", list(Recompute))
def test_never_negative(method: Method, recompute: Recompute) -> None:
    spec = spec_of("mixtral")
    adapted = frozenset({"q_proj", "v_proj", "gate_up_proj"})
    for layout in (Layout(), Layout(tp=2, sequence_parallel=True), Layout(pp=2, cp=2)):
        job = TrainingJob(method=method, recompute=recompute, seq_len=64, grad_accum_steps=4)
        b = training_activations(spec, job, layout, adapted)
        fields = (b.layers_bytes, b.embedding_bytes, b.logits_loss_bytes, b.backward_transient_bytes)
        assert all(x >= 0 for x in fields) and b.per_layer_bytes > 0


# --- trace comparison (needs torch, transformers, peft) --------------------------------------------------

TRACE_CASES = [
    ("llama_gqa", "sdpa", "full", 2, 64),
    ("llama", "eager", "full", 1, 96),
    ("mixtral", "sdpa", "full", 2, 32),
    ("gpt2", "sdpa", "full", 1, 64),
    ("llama", "sdpa", "lora_all", 2, 64),
    ("llama", "sdpa", "ckpt", 2, 64),
]


def traced_saved_bytes(name: str, attention: str, mode: str, batch: int, seq: int) -> tuple[int, int]:
    """(bytes of decoder layer 1, all saved bytes + the logits) measured with saved_tensors_hooks."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from torch._subclasses.fake_tensor import FakeTensorMode

    from llmplan.trace.build import fake_safe_module_moves

    cfg = {k: v for k, v in CONFIGS[name].items() if k != "architectures"}
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = transformers.AutoModelForCausalLM.from_config(
            config, attn_implementation=attention, dtype=torch.bfloat16
        )
        base = model
        if mode.startswith("lora"):
            peft = pytest.importorskip("peft")
            with fake_safe_module_moves():
                model = peft.get_peft_model(
                    model, peft.LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")
                )
            base = model.get_base_model()
        if mode == "ckpt":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        params = {p.untyped_storage()._cdata for p in model.parameters()}
        layers = base.model.layers if hasattr(base, "model") else base.transformer.h
        where = ["outside"]
        layers[1].register_forward_pre_hook(lambda *_: where.__setitem__(0, "layer1"))
        layers[1].register_forward_hook(lambda *_: where.__setitem__(0, "outside"))
        seen: dict[int, tuple[str, int]] = {}
        keep = []

        def pack(t):
            storage = t.untyped_storage()
            if storage._cdata not in params and storage._cdata not in seen:
                seen[storage._cdata] = (where[0], storage.nbytes())
                keep.append(t)
            return t

        ids = torch.randint(0, 1000, (batch, seq))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(input_ids=ids, labels=ids)
        logits = out.logits.untyped_storage()
        total = sum(n for _, n in seen.values()) + (0 if logits._cdata in seen else logits.nbytes())
        return sum(n for w, n in seen.values() if w == "layer1"), total


@pytest.mark.trace
@pytest.mark.parametrize(("name", "attention", "mode", "batch", "seq"), TRACE_CASES)
def test_formula_matches_trace(name: str, attention: str, mode: str, batch: int, seq: int) -> None:
    """Formula vs measured saved-tensor bytes: layer 1 and the whole forward, within 3 %."""
    layer, total = traced_saved_bytes(name, attention, mode, batch, seq)
    spec = spec_of(name)
    job, adapted = job_of(spec, attention, mode, batch, seq)
    assert layer1_bytes(spec, job, adapted) == pytest.approx(layer, rel=0.03)
    assert training_activations(spec, job, Layout(), adapted).total == pytest.approx(total, rel=0.03)
