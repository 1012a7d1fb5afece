"""The seeds' inference rules of thumb, each computed by llmplan for the case it names (docs/rules-of-thumb.md).

The rows are `estimate.rules.RuleCase`s, like the training rows; `estimate.rules.all_rules` lists both
sections.
"""

from __future__ import annotations

from llmplan import catalog
from llmplan.estimate.inference import estimate_inference
from llmplan.estimate.rules import RuleCase
from llmplan.formulas.formats import FP16, encode_float, encode_int
from llmplan.formulas.params import count_params
from llmplan.formulas.quant import weight_bytes
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat
from llmplan.units import GIB


def inference_rules() -> tuple[RuleCase, ...]:
    """Compute every inference row (about 2 ms: a few estimates of Llama-2-7B)."""
    llama = load_model("llama-2-7b")
    params = count_params(llama).total
    a100 = Cluster(accelerator=catalog.accelerator("a100-sxm-80gb"))
    fp16 = dict(quant=QuantFormat.FP16, compute_dtype=QuantFormat.FP16)
    short = estimate_inference(llama, InferenceJob(context_len=2048, **fp16), a100)
    busy = estimate_inference(llama, InferenceJob(context_len=4096, batch=16, **fp16), a100)
    w16 = weight_bytes(llama, QuantFormat.FP16).total
    w32 = weight_bytes(llama, QuantFormat.FP32).total
    w8 = weight_bytes(llama, QuantFormat.INT8, compute_dtype=QuantFormat.FP16).total
    return (
        RuleCase(
            "000",
            "inference ≈ 2 bytes per parameter in fp16",
            "Llama-2-7B fp16 weights, bytes",
            2 * params,
            w16,
            "exact for the weights; the KV cache, activations and the CUDA context come on top",
        ),
        RuleCase(
            "001",
            "inference memory ≈ 1.2 × weights",
            "Llama-2-7B fp16, 1 × 2048 tokens, HF, A100 (device)",
            1.2 * w16,
            short.memory.device_bytes,
            f"holds for one short sequence ({short.memory.kv_cache_bytes / GIB:.0f} GiB KV + "
            f"{short.memory.non_torch_bytes / GIB:.1f} GiB context ≈ {short.memory.device_bytes / w16:.2f}×); "
            "the KV cache grows with context × batch",
        ),
        RuleCase(
            "001",
            "inference memory ≈ 1.2 × weights",
            "Llama-2-7B fp16, 16 × 4096 tokens, HF, A100 (device)",
            1.2 * w16,
            busy.memory.device_bytes,
            f"{busy.memory.kv_cache_bytes / GIB:.0f} GiB of KV cache (2·32·32·128·4096·2 B per sequence × 16) make "
            f"it {busy.memory.device_bytes / w16:.1f}× the weights (the prefill of 16 × 4096 tokens adds "
            f"{busy.memory.activation_peak_bytes / GIB:.1f} GiB of activations)",
        ),
        RuleCase(
            "002",
            "Llama-2-7B fp32 weights = 7B × 4 bytes = 28 GB",
            "Llama-2-7B fp32 weights, bytes",
            28e9,
            w32,
            "the model has 6,738,415,616 parameters, not 7e9: 26.95 GB (25.1 GiB)",
        ),
        RuleCase(
            "003",
            "1B parameters in int8 load in 1 GB",
            "Llama-2-7B LLM.int8, bytes per parameter",
            1.0,
            w8 / params,
            "embeddings and lm_head stay fp16 (bitsandbytes skips them) and each row has an fp32 scale",
        ),
        RuleCase(
            "001",
            "fp16 overflows above 65506",
            "largest finite fp16",
            65506.0,
            float(FP16.max_value),
            "the largest fp16 is 65504; 65506 still rounds to 65504, overflow to inf starts at 65520",
        ),
        RuleCase(
            "003",
            "pi in fp16 = 3.140625",
            "pi rounded to fp16",
            3.140625,
            encode_float(3.141592653589793, FP16).stored,
            "agrees: 1.1001001000 × 2^1",
        ),
        RuleCase(
            "003",
            "pi in int8 = 3",
            "pi as int8 with scale 1",
            3.0,
            encode_int(3.141592653589793, 8, 127.0).stored,
            "agrees without a scale; with a scale of absmax/127 (absmax 4) int8 stores 3.1496",
        ),
    )
