"""Peer estimators run on the same measured cases, for the side-by-side columns of docs/accuracy.md.

Three peers, each as its authors publish it:

1. **llm-analysis** (PyPI `llm-analysis` 0.2.2, cli99/llm-analysis): `LLMAnalysis.training(...)` /
   `.inference(...)` called through its Python API with a `ModelConfig` built from our ModelSpec and a
   `GPUConfig` from our Accelerator. Its GPU memory is set to 1 PB so that its own fit checks (it asserts the
   batch fits) never stop it: the figure, not its verdict, is compared. SwiGLU models get
   `ffn_embed_dim = 1.5 · intermediate_size` (its documented isoparam convention, `mlp_gated_linear_units`).
   It has no PEFT: a LoRA / QLoRA row gets its 16-bit full fine-tuning figure (noted). It accepts 4-, 8- and
   16-bit weights only: fp32 rows are refused (its own assertion, reported as such). Training total =
   `(weight+op_state+grad+act)_memory_per_gpu`; inference total = weights + KV cache + the larger of the
   prefill and decode activations.
2. **DeepSpeed** `estimate_zero2_model_states_mem_needs` / `estimate_zero3_model_states_mem_needs`
   (deepspeed/runtime/zero/stage_1_and_2.py and stage3.py, read at edaa722, 2026-08): per-GPU bytes =
   ZeRO-2: 2·N + 18·N / gpus (no offload), 2·N with optimizer offload; ZeRO-3: 4·L_max + 18·N / gpus
   (no offload), 4·L_max + 2·N / gpus with optimizer offload, 4·L_max with parameter offload; N = all
   parameters, L_max = the largest module's own parameters. Model states only (no activations), mixed
   precision Adam only; rows without ZeRO use the ZeRO-2 formula over the data-parallel GPUs (stage 0/1 have
   no estimator). No inference estimator.
3. **accelerate** `accelerate estimate-memory` (accelerate/commands/estimate.py `estimate_training_usage`,
   v1.15): training with Adam = 4 × the model's size in the training dtype (fp32: 16 bytes/param; fp16/bf16:
   8 bytes/param), its docs' "≈4× for Adam"; inference = the size in the dtype (fp32 4, fp16/bf16 2, int8 1,
   int4 0.5 bytes/param) × 1.2, the docs' "add up to 20 % for inference" (EleutherAI). One GPU, no sharding,
   no activations, no PEFT; int4 training is "N/A" there.

None of the peers states a memory counter; their figures are compared with the row's counter as published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmplan import catalog
from llmplan.formulas.params import count_params
from llmplan.specs.model import MlpKind, ModelSpec
from llmplan.specs.training import Method, OffloadTarget, Precision, Recompute, TrainingJob
from llmplan.validate.measured import InferenceSetting, MeasuredCase, Scope

PEERS = ("llm-analysis", "deepspeed", "accelerate")

_QUANT_4BIT = {"fp4", "nf4", "gptq-int4"}
_WEIGHT_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "fp4": 4, "nf4": 4, "gptq-int4": 4}
_PEFT_METHODS = {
    Method.LORA,
    Method.QLORA,
    Method.DORA,
    Method.ADALORA,
    Method.IA3,
    Method.PREFIX,
    Method.PROMPT,
    Method.PTUNING,
    Method.PTUNING_V2,
    Method.ADAPTER_HOULSBY,
    Method.ADAPTER_PFEIFFER,
    Method.BITFIT,
    Method.LAYERNORM,
    Method.FREEZE,
}


@dataclass(frozen=True, slots=True)
class PeerResult:
    """One peer's figure for one case, and what it covers."""

    peer: str
    bytes: int | None
    """Per-GPU bytes (or whole-model bytes for whole-model cases); None when the peer cannot say."""
    note: str = ""
    """What the figure leaves out ("model states only", "no PEFT: full fine-tuning figure") or why none."""


def largest_module_params(model: ModelSpec) -> int:
    """The parameters of the largest single module (DeepSpeed's `largest_layer_params`): the largest of the
    embedding tables, the untied head and each linear layer (all experts of a fused expert tensor together)."""
    sizes = [t.numel for t in model.embedding]
    sizes += [lin.numel for block in model.block_kinds for lin in block.linears]
    if not model.tie_word_embeddings:
        sizes.append(model.lm_head.numel)
    return max(sizes)


def deepspeed_model_states(model: ModelSpec, case: MeasuredCase) -> PeerResult:
    """DeepSpeed's documented ZeRO-2 / ZeRO-3 model-state estimators (formulas in the module docstring)."""
    if case.training is None:
        return PeerResult("deepspeed", None, "no inference estimator")
    n = count_params(model).total
    layout = case.layout
    gpus = layout.dp
    optimizer_offload = layout.offload_optimizer is not OffloadTarget.NONE
    if layout.sharding_stage == 3:
        largest = 4 * largest_module_params(model)
        if layout.offload_params is not OffloadTarget.NONE:
            gpu = largest
        elif optimizer_offload:
            gpu = largest + 2 * n // gpus
        else:
            gpu = largest + 18 * n // gpus
        formula = "estimate_zero3_model_states_mem_needs"
    else:
        gpu = 2 * n if optimizer_offload else 2 * n + 18 * n // gpus
        formula = "estimate_zero2_model_states_mem_needs"
    note = f"{formula}: model states only (no activations), all parameters trained"
    if case.training.method in _PEFT_METHODS:
        note += "; counts the frozen base as trainable (no PEFT)"
    return PeerResult("deepspeed", int(gpu), note)


def accelerate_rule(model: ModelSpec, case: MeasuredCase) -> PeerResult:
    """accelerate `estimate-memory`: 4 × model size in dtype for Adam training, × 1.2 for inference."""
    n = count_params(model).total
    if case.training is not None:
        job = case.training
        if job.method is Method.QLORA:
            return PeerResult("accelerate", None, "int4 training is N/A in estimate-memory")
        bytes_per_param = 4 if job.precision is Precision.FP32 else 2
        note = "4 x model size (Adam), one GPU, no activations"
        if job.method in _PEFT_METHODS:
            note += ", no PEFT"
        return PeerResult("accelerate", 4 * bytes_per_param * n, note)
    assert case.inference is not None
    bits = _WEIGHT_BITS[case.inference.weights]
    return PeerResult("accelerate", int(1.2 * n * bits / 8), "model size in dtype x 1.2 (inference)")


def _gated(model: ModelSpec) -> bool:
    return model.mlp_kind is MlpKind.GATED


def _llm_analysis_objects(model: ModelSpec, case: MeasuredCase, seq_total: int):
    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig

    ffn = int(model.intermediate_size * (1.5 if _gated(model) else 1))
    experts = model.moe.num_experts if model.moe else 1
    top_k = model.moe.experts_per_token if model.moe else 1
    if model.moe:
        ffn = int(model.moe.expert_intermediate_size * (1.5 if _gated(model) else 1))
    model_config = ModelConfig(
        name=model.name,
        num_layers=model.num_hidden_layers,
        n_head=model.num_attention_heads,
        hidden_dim=model.hidden_size,
        vocab_size=model.vocab_size,
        max_seq_len=max(model.max_position_embeddings, seq_total),
        num_key_value_heads=model.num_key_value_heads,
        ffn_embed_dim=ffn,
        expansion_ratio=ffn / model.hidden_size,
        model_type=model.model_type,
        moe_num_experts=experts,
        moe_top_k=top_k,
    )
    acc = catalog.accelerator(case.gpu or "a100-sxm-80gb")
    peak = acc.peak_flops_per_s.get("bf16") or acc.peak_flops_per_s.get("fp16") or 1e14
    link = acc.intra_node.one_way_bytes_per_s if acc.intra_node else 32e9
    gpu_config = GPUConfig(
        name=acc.id,
        mem_per_GPU_in_GB=1e6,
        hbm_bandwidth_in_GB_per_sec=acc.memory_bandwidth_bytes_per_s / 1e9,
        intra_node_bandwidth_in_GB_per_sec=link / 1e9,
        intra_node_min_message_latency=8e-6,
        peak_fp16_TFLOPS=peak / 1e12,
    )
    if case.training is not None:
        weight_bits = 32 if case.training.precision is Precision.FP32 else 16
        act_bits = 32 if case.training.precision is Precision.FP32 else 16
    else:
        assert case.inference is not None
        weight_bits = _WEIGHT_BITS[case.inference.weights]
        act_bits = 32 if case.inference.weights == "fp32" else 16
    dtype = DtypeConfig(
        name=f"w{weight_bits}a{act_bits}",
        weight_bits=weight_bits,
        activation_bits=act_bits,
        embedding_bits=max(weight_bits, act_bits),
    )
    layout = case.layout
    parallel = ParallelismConfig(tp_size=layout.tp, pp_size=layout.pp, dp_size=layout.dp)
    analysis = LLMAnalysis(
        model_config, gpu_config, dtype, parallel, flops_efficiency=0.5, hbm_memory_efficiency=0.9
    )
    return analysis


def _recompute(job: TrainingJob):
    from llm_analysis.analysis import ActivationRecomputation

    return {
        Recompute.NONE: ActivationRecomputation.NONE,
        Recompute.SELECTIVE: ActivationRecomputation.SELECTIVE,
        Recompute.FULL: ActivationRecomputation.FULL,
    }[job.recompute]


def llm_analysis(model: ModelSpec, case: MeasuredCase) -> PeerResult:
    """llm-analysis 0.2.2 through its Python API (see the module docstring for the mapping)."""
    try:
        from llm_analysis.analysis import DSZeRO
    except ImportError:
        return PeerResult(
            "llm-analysis", None, "llm-analysis is not installed (pip install --no-deps llm-analysis==0.2.2 fire: with its pinned deps it downgrades transformers)"
        )
    # llm-analysis logs every figure at INFO on a logger literally named "__name__" (llm_analysis/logger.py)
    logging.getLogger("__name__").setLevel(logging.ERROR)
    try:
        if case.training is not None:
            job = case.training
            seq = job.seq_len + (job.peft.num_virtual_tokens if job.method is Method.PROMPT else 0)
            analysis = _llm_analysis_objects(model, case, seq)
            zero = [DSZeRO.NONE, DSZeRO.STAGE_1, DSZeRO.STAGE_2, DSZeRO.STAGE_3][case.layout.sharding_stage]
            summary = analysis.training(
                batch_size_per_gpu=job.micro_batch_size,
                gradient_accumulation_steps=1,
                seq_len=seq,
                activation_recomputation=_recompute(job),
                ds_zero=zero,
                flash_attn=job.attention.value != "eager",
                mlp_gated_linear_units=_gated(model),
            )
            total = summary["(weight+op_state+grad+act)_memory_per_gpu"]
            note = "weights + optimizer + gradients + activations"
            if job.method in _PEFT_METHODS:
                note = "no PEFT: full fine-tuning figure"
            return PeerResult("llm-analysis", int(total), note)
        setting: InferenceSetting = case.inference  # type: ignore[assignment]
        analysis = _llm_analysis_objects(model, case, setting.prompt_len + setting.new_tokens)
        summary = analysis.inference(
            batch_size_per_gpu=setting.batch_size,
            seq_len=setting.prompt_len,
            num_tokens_to_generate=setting.new_tokens,
        )
        total = (
            summary["weight_memory_per_gpu"]
            + summary["kv_cache_memory_per_gpu"]
            + max(summary["prefill_activation_memory_per_gpu"], summary["decode_activation_memory_per_gpu"])
        )
        note = "weights + KV cache + activations" + (
            "; whole model on one device" if case.scope is Scope.WHOLE_MODEL else ""
        )
        return PeerResult("llm-analysis", int(total), note)
    except (AssertionError, ValueError, ZeroDivisionError, KeyError) as exc:
        reason = str(exc).split(",")[0] or type(exc).__name__
        return PeerResult("llm-analysis", None, f"refused: {reason}"[:120])


def run_peers(model: ModelSpec, case: MeasuredCase) -> tuple[PeerResult, ...]:
    """All three peers on one computable case."""
    return (llm_analysis(model, case), deepspeed_model_states(model, case), accelerate_rule(model, case))
