"""estimate_inference: the seeds' rules of thumb, weight bytes per format, vLLM's budget, the fit search."""

from __future__ import annotations

import pytest

from llmplan import catalog
from llmplan.errors import LayoutError, SpecError
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.inference_memory import Footprint as _Footprint
from llmplan.formulas.params import count_params
from llmplan.formulas.quant import gguf_bits_per_weight, linear_weight_bytes, weight_bytes
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import Engine, InferenceJob, KvDtype, QuantFormat, VllmSettings

Q = QuantFormat


def cluster(gpu: str = "a100-sxm-80gb") -> Cluster:
    return Cluster(accelerator=catalog.accelerator(gpu))


def fp16_job(**kw: object) -> InferenceJob:
    return InferenceJob(quant=Q.FP16, compute_dtype=Q.FP16, **kw)  # type: ignore[arg-type]


# --- the seeds -------------------------------------------------------------------------------------------


def test_seed000_two_bytes_per_param_fp16() -> None:
    """Seed 000: inference ≈ 2 bytes per parameter in fp16 — exact for the weights."""
    spec = load_model("llama-2-7b")
    assert weight_bytes(spec, Q.FP16).total == 2 * count_params(spec).total


def test_seed001_inference_about_1_2_x_weights() -> None:
    """Seed 001: inference ≈ 1.2 × weights. True for one sequence at a short context; the KV cache breaks it."""
    spec = load_model("llama-2-7b")
    short = estimate_inference(spec, fp16_job(context_len=2048), cluster())
    ratio = short.memory.device_bytes / short.memory.weights.total
    assert 1.05 < ratio < 1.25
    busy = estimate_inference(spec, fp16_job(context_len=4096, batch=8), cluster())
    assert busy.memory.device_bytes / busy.memory.weights.total > 2.4  # + 16 GiB of KV cache


def test_seed002_llama2_7b_fp32_weights() -> None:
    """Seed 002: 7B × 4 bytes = 28 GB; exactly 6,738,415,616 params × 4 = 26.95 GB (the seed rounds 6.74B to 7B)."""
    spec = load_model("llama-2-7b")
    w = weight_bytes(spec, Q.FP32).total
    assert w == 4 * 6_738_415_616
    assert w == pytest.approx(28e9, rel=0.04)


# --- weight bytes per format ---------------------------------------------------------------------------

N_IN, N_OUT = 4096, 11008


@pytest.mark.parametrize(
    ("fmt", "expected", "why"),
    [
        (Q.FP32, 4 * N_IN * N_OUT, "4 bytes"),
        (Q.BF16, 2 * N_IN * N_OUT, "2 bytes"),
        (Q.FP8, N_IN * N_OUT + 8, "1 byte + fp32 weight_scale and input_scale"),
        (Q.FP8_CHANNEL, N_IN * N_OUT + 4 * N_OUT, "1 byte + fp32 per output channel"),
        (Q.INT8, N_IN * N_OUT + 4 * N_OUT, "LLM.int8: int8 CB + fp32 SCB per row"),
        (
            Q.GPTQ_INT4,
            N_IN * N_OUT // 2 + 32 * N_OUT // 2 + 2 * 32 * N_OUT + 4 * N_IN,
            "g128: qweight qzeros scales g_idx",
        ),
        (Q.AWQ_INT4, N_IN * N_OUT // 2 + 32 * N_OUT // 2 + 2 * 32 * N_OUT, "g128 without g_idx"),
        (Q.Q8_0, N_IN * N_OUT // 32 * 34, "34 bytes per 32"),
        (Q.Q4_0, N_IN * N_OUT // 32 * 18, "18 bytes per 32"),
    ],
)
def test_linear_bytes(fmt: QuantFormat, expected: int, why: str) -> None:
    payload, meta = linear_weight_bytes(fmt, N_IN, N_OUT)
    assert payload + meta == expected, why


def test_nf4_double_quant_bits() -> None:
    """QLoRA section 3: 4 + 8/64 + 32/(64·256) = 4.127 bits per weight (plus per-tensor codes)."""
    n = N_IN * N_OUT
    payload, meta = linear_weight_bytes(Q.NF4, N_IN, N_OUT)
    assert 8 * (payload + meta) / n == pytest.approx(4 + 8 / 64 + 32 / (64 * 256), abs=1e-3)
    _, meta_plain = linear_weight_bytes(Q.NF4, N_IN, N_OUT, double_quant=False)
    assert 8 * meta_plain / n == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    ("gguf", "bpw"),
    [
        ("q4_0", 4.5),
        ("q8_0", 8.5),
        ("q4_k", 4.5),
        ("q5_k", 5.5),
        ("q6_k", 6.5625),
        ("q3_k", 3.4375),
        ("q2_k", 2.625),
    ],
)
def test_gguf_bits_per_weight(gguf: str, bpw: float) -> None:
    assert gguf_bits_per_weight(gguf) == bpw


# TheBloke/Llama-2-7B-GGUF README "Provided files" (file sizes in GB = 1e9; files add ~1 MB of metadata).
THEBLOKE_LLAMA2_7B_GB = {
    Q.Q8_0: 7.16,
    Q.Q6_K: 5.53,
    Q.Q5_K_M: 4.78,
    Q.Q4_K_M: 4.08,
    Q.Q4_0: 3.83,
    Q.Q3_K_M: 3.30,
}


@pytest.mark.parametrize(("fmt", "gb"), THEBLOKE_LLAMA2_7B_GB.items())
def test_gguf_file_sizes(fmt: QuantFormat, gb: float) -> None:
    assert weight_bytes(load_model("llama-2-7b"), fmt).total / 1e9 == pytest.approx(gb, rel=0.01)


def test_formats_shrink_in_order() -> None:
    spec = load_model("llama-3-8b")
    order = [Q.FP32, Q.BF16, Q.FP8, Q.Q8_0, Q.Q6_K, Q.Q5_K_M, Q.Q4_K_M, Q.Q3_K_M, Q.Q2_K]
    sizes = [weight_bytes(spec, f).total for f in order]
    assert sizes == sorted(sizes, reverse=True)


def test_tp_shards_weights() -> None:
    spec = load_model("llama-2-7b")
    one = weight_bytes(spec, Q.BF16).total
    eight = weight_bytes(spec, Q.BF16, tp=8).total
    assert one / 8 < eight < one / 8 * 1.01  # norms are replicated


def test_high_precision_tensors_stay_16_bit() -> None:
    spec = load_model("llama-2-7b")
    w = weight_bytes(spec, Q.GPTQ_INT4, compute_dtype=Q.FP16)
    embed_and_head = 2 * 2 * 32000 * 4096
    norms = 2 * (2 * 32 + 1) * 4096
    assert w.high_precision_bytes == embed_and_head + norms


# --- vLLM -----------------------------------------------------------------------------------------------


def test_vllm_blocks_follow_determine_available_memory() -> None:
    spec = load_model("llama-3-8b")
    job = InferenceJob(engine=Engine.VLLM, context_len=8192, vllm=VllmSettings(gpu_memory_utilization=0.9))
    est = estimate_inference(spec, job, cluster("h100"))
    v = est.vllm
    assert v is not None
    # vLLM multiplies torch.cuda.mem_get_info's total (79.11 GiB on an H100 80GB), not nvidia-smi's 81559 MiB
    assert v.requested_bytes == int(round(79.11 * 2**30) * 0.9)
    assert v.requested_bytes < int(est.capacity_bytes * 0.9)
    assert v.available_kv_bytes == v.requested_bytes - v.profile_peak_bytes - v.non_torch_bytes
    assert v.block_bytes == 16 * 128 * 1024
    assert v.num_gpu_blocks == v.available_kv_bytes // v.block_bytes
    assert v.max_concurrency == v.available_kv_bytes // (8192 * 128 * 1024)
    lower = estimate_inference(
        spec, InferenceJob(engine=Engine.VLLM, vllm=VllmSettings(gpu_memory_utilization=0.5)), cluster("h100")
    )
    assert lower.vllm is not None and lower.vllm.num_gpu_blocks < v.num_gpu_blocks


def test_fp8_kv_doubles_vllm_blocks() -> None:
    spec = load_model("llama-3-8b")
    base = estimate_inference(spec, InferenceJob(engine=Engine.VLLM), cluster("h100")).vllm
    fp8 = estimate_inference(
        spec, InferenceJob(engine=Engine.VLLM, kv_dtype=KvDtype.FP8), cluster("h100")
    ).vllm
    assert base is not None and fp8 is not None
    assert fp8.num_gpu_blocks == 2 * base.num_gpu_blocks or fp8.num_gpu_blocks == 2 * base.num_gpu_blocks + 1


# --- the fit search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", [Engine.HF, Engine.VLLM])
def test_fit_search_is_monotone_and_tight(engine: Engine) -> None:
    spec = load_model("llama-3-8b")
    acc = catalog.accelerator("a100-sxm-40gb")
    previous = None
    for context in (512, 2048, 8192):
        job = InferenceJob(context_len=context, engine=engine)
        est = estimate_inference(spec, job, Cluster(accelerator=acc))
        fp = _Footprint(spec, job, acc)
        b = est.max_batch_at_context
        # vLLM never runs more than max_num_seqs sequences at once, whatever the memory holds
        capped = engine is Engine.VLLM and b == job.vllm.max_num_seqs
        assert b >= 1 and fp.fits(context, b) and (capped or not fp.fits(context, b + 1))
        if previous is not None:
            assert b <= previous
        previous = b
    est = estimate_inference(
        spec, InferenceJob(context_len=1024, batch=64, engine=engine), Cluster(accelerator=acc)
    )
    fp = _Footprint(spec, InferenceJob(context_len=1024, batch=64, engine=engine), acc)
    c = est.max_context_at_batch
    assert fp.fits(c, 64) and not fp.fits(c + 1, 64)


def test_does_not_fit() -> None:
    est = estimate_inference(load_model("llama-2-70b"), InferenceJob(context_len=4096), cluster())
    assert not est.fits and est.headroom_bytes < 0 and est.max_batch_at_context == 0


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu", ["v100-sxm2-32gb", "a100-sxm-80gb"])
def test_fp8_needs_ada_or_hopper(gpu: str) -> None:
    with pytest.raises(SpecError, match="compute capability >= 8.9"):
        estimate_inference(load_model("llama-3-8b"), InferenceJob(quant=Q.FP8), cluster(gpu))


def test_bf16_on_v100_refused() -> None:
    with pytest.raises(SpecError, match="bf16"):
        estimate_inference(load_model("llama-2-7b"), InferenceJob(quant=Q.BF16), cluster("v100-sxm2-32gb"))


def test_context_beyond_positions() -> None:
    with pytest.raises(SpecError, match="max_position_embeddings 4096"):
        estimate_inference(load_model("llama-2-7b"), fp16_job(context_len=4097), cluster())
    with pytest.raises(SpecError, match="original_max_position_embeddings 8192"):
        estimate_inference(load_model("llama-3.1-8b"), InferenceJob(context_len=131073), cluster())
    estimate_inference(load_model("llama-3.1-8b"), InferenceJob(context_len=131072), cluster())


def test_tp_not_dividing_heads() -> None:
    with pytest.raises(LayoutError, match="attention heads"):
        estimate_inference(
            load_model("llama-3-8b"), InferenceJob(tp=3), Cluster(accelerator=catalog.accelerator("h100"))
        )


# --- speed --------------------------------------------------------------------------------------------------


def test_decode_is_memory_bound_at_batch_one_and_prefill_compute_bound() -> None:
    spec = load_model("llama-3-8b")
    long_prompt = estimate_inference(spec, InferenceJob(context_len=2048), cluster("h100")).speed
    assert long_prompt.prefill.bound == "compute" and long_prompt.decode.bound == "memory"
    est = estimate_inference(spec, InferenceJob(context_len=128), cluster("h100"))
    assert est.speed.prefill.bound == "memory"  # 128 tokens: reading the weights takes longer than the FLOPs
    critical = est.speed.critical_batch
    assert critical is not None and 100 < critical < 400  # H100: 989 TFLOP/s / 3.35 TB/s ≈ 295 FLOP/byte
    at_critical = estimate_inference(
        spec, InferenceJob(context_len=128, batch=round(critical) + 20), cluster("h100")
    )
    assert at_critical.speed.decode.bound == "compute"
    # At 2048 tokens each sequence's KV traffic outweighs its FLOPs: decode never turns compute-bound.
    assert (
        estimate_inference(spec, InferenceJob(context_len=2048), cluster("h100")).speed.critical_batch is None
    )


def test_tokens_per_s_grows_with_batch() -> None:
    spec = load_model("llama-3-8b")
    one = estimate_inference(spec, InferenceJob(context_len=1024), cluster("h100")).speed
    many = estimate_inference(spec, InferenceJob(context_len=1024, batch=32), cluster("h100")).speed
    assert many.tokens_per_s > 10 * one.tokens_per_s
    assert many.tpot_s > one.tpot_s


def test_inference_rules_rows() -> None:
    from llmplan.estimate.rules_inference import inference_rules

    rows = inference_rules()
    assert {r.seed for r in rows} == {"000", "001", "002", "003"}
    by_case = {r.case: r for r in rows}
    assert by_case["Llama-2-7B fp16 weights, bytes"].llmplan_value == 2 * 6_738_415_616
    assert by_case["largest finite fp16"].llmplan_value == 65504.0
    busy = by_case["Llama-2-7B fp16, 16 × 4096 tokens, HF, A100 (device)"]
    # 32 GiB KV + 12.6 GiB weights + a 6 GiB prefill peak (3·t·I MLP + 4·t·h residual stream, traced)
    assert busy.llmplan_value / (busy.rule_value / 1.2) == pytest.approx(4.07, abs=0.05)


def test_vllm_int8_kv_refused_and_notes() -> None:
    spec = load_model("llama-3-8b")
    with pytest.raises(SpecError, match="kv_dtype"):
        estimate_inference(spec, InferenceJob(engine=Engine.VLLM, kv_dtype=KvDtype.INT8), cluster("h100"))
    gguf = estimate_inference(spec, InferenceJob(quant=Q.Q4_K_M), cluster("h100"))
    assert any("dequantizes GGUF" in n for n in gguf.notes)
    too_big = estimate_inference(load_model("llama-3-70b"), InferenceJob(engine=Engine.VLLM), cluster())
    assert not too_big.fits and any("cannot start" in n for n in too_big.notes)


def test_rope_scaled_model_message_names_its_scaling() -> None:
    with pytest.raises(SpecError, match=r"rope_scaling \(linear, factor 8.0\)"):
        estimate_inference(load_model("gemma-3-27b"), InferenceJob(context_len=200_000), cluster("h100"))


# --- the HF prefill peak (trace comparisons in tests/test_trace_kv.py) --------------------------------------


def test_eager_prefill_adds_the_score_tensors() -> None:
    """Eager attention holds, at the softmax of the last layer, b·H·s² scores in fp16 + their fp32 copy + the fp32
    probabilities (2 + 4 + 4 bytes) and one additive b·s² fp16 causal mask, which SDPA does not materialise."""
    from llmplan.estimate.inference_memory import hf_prefill_peak_bytes
    from llmplan.specs.training import AttentionImpl

    spec = load_model("llama-2-7b")
    b, s = 2, 1024
    sdpa = hf_prefill_peak_bytes(spec, b, s, 2, 1)
    eager = hf_prefill_peak_bytes(spec, b, s, 2, 1, attention=AttentionImpl.EAGER)
    heads, d, h = spec.num_attention_heads, spec.head_dim, spec.hidden_size
    rope = 2 * s * d * 2
    attn_eager = 3 * b * s * h * 2 + b * s * heads * d * 2 + b * heads * s * s * 10
    assert eager == rope + b * s * s * 2 + attn_eager
    assert sdpa == rope + 4 * b * s * h * 2 + 3 * b * s * spec.intermediate_size * 2  # the MLP is its peak
    est = estimate_inference(
        spec, fp16_job(context_len=s + 16, prompt_len=s, batch=b, attention=AttentionImpl.EAGER), cluster()
    )
    assert est.memory.activation_peak_bytes == eager


def test_serve_attention_option(capsys) -> None:
    import json

    from llmplan.cli import main

    peaks = {}
    for attention in ("sdpa", "eager"):
        code = main(["serve", "llama-2-7b", "--context", "4096", "--attention", attention, "--json"])
        assert code == 0
        data = json.loads(capsys.readouterr().out)
        assert data["job"]["attention"] == attention
        peaks[attention] = next(t for t in data["memory"]["terms"] if t["name"] == "temporaries")["value"]
    assert peaks["eager"] > 4 * peaks["sdpa"]
    assert main(["serve", "llama-2-7b", "--attention", "naive"]) == 2
