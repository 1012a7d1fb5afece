"""Build the real transformers (+ peft) model of a ModelSpec on fake tensors, and say what the trace cannot do.

The model is made from its config dict (no weights, no hub, no remote code) under a `FakeTensorMode` on the CPU
device: fake "cuda" tensors abort autograd in a CPU build of PyTorch, and on the CPU every size is the same.
torch, transformers and peft are imported here, lazily, so the core of llmplan imports without them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from collections.abc import Iterator
from typing import Any

from llmplan.errors import LlmplanError, MissingExtraError, UnsupportedModelError
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import AttentionImpl, Layout, Method, Precision, Recompute, TrainingJob

# Import-time chatter that says nothing about a trace: torchao logs every CUDA-only extension a CPU build
# cannot load, and torch's pytree logs a deprecation for each enum torchao registers.
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree")


def require(module: str = "torch") -> Any:
    """Import torch / transformers / peft, or raise MissingExtraError naming the `trace` extra."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("tracing the real model", module.split(".")[0]) from None


def check_native(spec: ModelSpec) -> None:
    """Models transformers does not implement natively are refused: only their remote code could build them."""
    if not spec.native_transformers:
        raise UnsupportedModelError(
            f"model: {spec.name} ({spec.model_type}) is not implemented in transformers without remote code, "
            "which llmplan never runs, so it cannot be traced; the analytic engine (llmplan train / serve) "
            "still answers for it"
        )


MODEL_DTYPE = {
    Precision.FP32: "float32",
    Precision.AMP_BF16: "float32",
    Precision.BF16: "bfloat16",
    Precision.BF16_MIXED: "bfloat16",
    Precision.FP16: "float16",
    Precision.FP16_MIXED: "float16",
}
"""The dtype the model's weights are held in during the traced step, per precision."""
HALF = {"bf16": "bfloat16", "fp16": "float16"}

UNTRACEABLE_METHODS = {
    Method.ADAPTER_HOULSBY: "Houlsby adapters are not implemented in peft",
    Method.ADAPTER_PFEIFFER: "Pfeiffer adapters are not implemented in peft",
}


def hf_config(spec: ModelSpec, *, num_layers: int | None = None, attention: str = "sdpa") -> Any:
    """The transformers config of a spec, optionally cut to `num_layers` decoder layers."""
    transformers = require("transformers")
    data = {
        k: v for k, v in spec.config.items() if k not in ("architectures", "auto_map", "transformers_version")
    }
    model_type = str(data.pop("model_type", spec.model_type))
    if num_layers is not None:
        data["num_hidden_layers"] = num_layers
        if isinstance(data.get("layer_types"), list):
            data["layer_types"] = data["layer_types"][:num_layers]
    try:
        config = transformers.AutoConfig.for_model(model_type, **data)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModelError(
            f"model: transformers cannot build a {model_type!r} config ({exc}); the analytic engine still answers"
        ) from None
    config._attn_implementation = attention
    config.use_cache = False
    return config


def build_model(spec: ModelSpec, *, dtype: str, attention: str, num_layers: int | None = None) -> Any:
    """The causal-LM model of `spec`, created under the fake mode active in the caller."""
    check_native(spec)
    torch = require("torch")
    transformers = require("transformers")
    config = hf_config(spec, num_layers=num_layers, attention=attention)
    try:
        return transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    except ValueError as exc:
        if "attention implementation" in str(exc):
            raise LlmplanError(
                f"attention: transformers' {spec.architecture} does not run with {attention!r} "
                "(allowed for it: eager; pass --attention eager)"
            ) from None
        raise


def decoder_layers(model: Any) -> Any:
    """The ModuleList of decoder layers (the longest ModuleList of the base model)."""
    torch = require("torch")
    best = None
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise LlmplanError("model: no decoder layers found in the built model")
    return best


def lm_head(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_output_embeddings()


def check_job(job: TrainingJob) -> None:
    """Raise for the settings a single-process trace cannot reproduce (rather than trace something else)."""
    if job.method in UNTRACEABLE_METHODS:
        raise LlmplanError(f"method: {job.method.value} cannot be traced ({UNTRACEABLE_METHODS[job.method]})")
    if job.precision not in MODEL_DTYPE:
        raise LlmplanError(
            f"precision: {job.precision.value} cannot be traced (fp8 GEMMs need Transformer Engine); "
            f"allowed: {', '.join(p.value for p in MODEL_DTYPE)}"
        )
    if job.chunked_ce:
        raise LlmplanError(
            "chunked_ce: chunked cross-entropy kernels are not part of transformers; not traced"
        )
    dtype = job.peft.adapter_dtype  # peft builds adapters in fp32 or, without its upcast, the weights' dtype
    if dtype is not None and dtype.bytes != 4 and MODEL_DTYPE[job.precision] != HALF[dtype.value]:
        raise LlmplanError(f"adapter_dtype: {dtype.value} on {job.precision.value} weights is not traced")
    if job.activation_offload:
        raise LlmplanError("activation_offload: offloading saved activations to the host is not traced")


def check_layout(layout: Layout | None) -> None:
    """Raise for layouts one CPU process cannot trace (only FSDP full shard over dp ranks can be)."""
    if layout is None:
        return
    if layout.tp > 1 or layout.pp > 1 or layout.cp > 1 or layout.ep > 1:
        raise LlmplanError(
            "layout: tensor, pipeline, context and expert parallel layouts cannot be traced on one CPU "
            "(FSDP full shard over dp ranks can); the analytic engine answers for them"
        )
    if int(layout.zero) != 0:
        raise LlmplanError(
            "zero: DeepSpeed ZeRO cannot be traced; trace --fsdp full-shard, its ZeRO-3 equivalent"
        )
    if layout.offload_optimizer.value != "none" or layout.offload_params.value != "none":
        raise LlmplanError("offload: offloaded optimizer states or parameters are not traced")
    if layout.fsdp is not None and layout.fsdp.value != "full-shard":
        raise LlmplanError(f"fsdp: {layout.fsdp.value} is not traced (allowed: full-shard)")
    if layout.dp > 1 and layout.fsdp is None:
        raise LlmplanError(
            "dp: plain data parallel (DDP) gradient buckets are not traced; trace one rank (dp 1) or FSDP"
        )


def attention_name(attention: AttentionImpl, recompute: Recompute) -> str:
    """The transformers attention implementation to trace.

    flash-attn kernels cannot run on fake tensors; SDPA's flash / memory-efficient backends save the same
    tensors (output and one logsumexp per row), so `flash` is traced as `sdpa`. Selective recomputation
    (Korthikanti et al. 2022, section 4.2) wraps the attention core in a non-reentrant checkpoint, registered
    as its own attention implementation.
    """
    base = "eager" if attention is AttentionImpl.EAGER else "sdpa"
    if recompute is not Recompute.SELECTIVE:
        return base
    return _register_selective(base)


def _register_selective(base: str) -> str:
    transformers = require("transformers")
    checkpoint = require("torch.utils.checkpoint")
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = f"llmplan_selective_{base}"
    if name in ALL_ATTENTION_FUNCTIONS:
        return name
    if base == "sdpa":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward as inner
    else:
        from transformers.models.llama.modeling_llama import eager_attention_forward as inner

    def selective(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
        return checkpoint.checkpoint(
            inner, module, query, key, value, attention_mask, use_reentrant=False, **kwargs
        )

    transformers.AttentionInterface.register(name, selective)
    return name


def prepare_training(model: Any, spec: ModelSpec, job: TrainingJob) -> Any:
    """Apply the job's method to a freshly built model; returns the model to train (a PeftModel for peft)."""
    if job.recompute is Recompute.FULL:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    method = job.method
    if method in (Method.FULL,):
        return model
    if method in (Method.BITFIT, Method.LAYERNORM, Method.FREEZE):
        _select_trainable(model, spec, job)
        return model
    peft = require("peft")
    config = _peft_config(peft, spec, job)
    with fake_safe_module_moves():
        model = peft.get_peft_model(model, config, autocast_adapter_dtype=job.peft.adapter_bytes == 4)
    if method is Method.QLORA:
        _quantize_base_nf4(model, job)
    if job.recompute is Recompute.FULL and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    return model


@contextlib.contextmanager
def fake_safe_module_moves() -> Iterator[None]:
    """Let `Module.to` run on fake parameters while the model is built (peft moves every new adapter).

    `Module._apply` swaps each fake parameter in place (`torch.utils.swap_tensors`), which fails because fake
    tensors made by a view op carry a weak reference. For the build only, `_apply` re-creates each parameter
    (one new Parameter per old one, so tied weights stay tied) and buffer instead.
    """
    torch = require("torch")
    original = torch.nn.Module._apply
    made: dict[int, tuple[Any, Any]] = {}

    def apply(self: Any, fn: Any, recurse: bool = True) -> Any:
        if recurse:
            for child in self.children():
                child._apply(fn)
        for key, param in self._parameters.items():
            if param is None:
                continue
            if id(param) not in made:
                with torch.no_grad():
                    applied = fn(param)
                new = (
                    param
                    if applied is param
                    else torch.nn.Parameter(applied, requires_grad=param.requires_grad)
                )
                made[id(param)] = (param, new)  # the old one is kept alive so that its id is not reused
            self._parameters[key] = made[id(param)][1]
        for key, buf in self._buffers.items():
            if buf is not None:
                self._buffers[key] = fn(buf)
        return self

    torch.nn.Module._apply = apply
    try:
        yield
    finally:
        torch.nn.Module._apply = original
        made.clear()


def _targets(job: TrainingJob) -> Any:
    return "all-linear" if job.peft.lora_targets == ("all-linear",) else list(job.peft.lora_targets)


def _peft_config(peft: Any, spec: ModelSpec, job: TrainingJob) -> Any:
    p = job.peft
    method = job.method
    task = "CAUSAL_LM"
    if method in (Method.LORA, Method.QLORA, Method.DORA):
        return peft.LoraConfig(
            r=p.lora_rank,
            lora_alpha=p.lora_alpha,
            lora_dropout=p.lora_dropout,
            target_modules=_targets(job),
            use_dora=method is Method.DORA,
            task_type=task,
        )
    if method is Method.ADALORA:
        return peft.AdaLoraConfig(
            init_r=p.lora_rank,
            lora_alpha=p.lora_alpha,
            lora_dropout=p.lora_dropout,
            target_modules=_targets(job),
            total_step=1000,
            task_type=task,
        )
    if method is Method.IA3:
        return peft.IA3Config(task_type=task)
    if method in (Method.PREFIX, Method.PTUNING_V2):
        return peft.PrefixTuningConfig(
            num_virtual_tokens=p.num_virtual_tokens,
            prefix_projection=method is Method.PREFIX and p.prefix_projection,
            encoder_hidden_size=p.encoder_hidden_size or spec.hidden_size,
            task_type=task,
        )
    if method is Method.PROMPT:
        return peft.PromptTuningConfig(num_virtual_tokens=p.num_virtual_tokens, task_type=task)
    if method is Method.PTUNING:
        return peft.PromptEncoderConfig(
            num_virtual_tokens=p.num_virtual_tokens,
            encoder_hidden_size=p.encoder_hidden_size or spec.hidden_size,
            task_type=task,
        )
    raise LlmplanError(f"method: {method.value} cannot be traced")


def _select_trainable(model: Any, spec: ModelSpec, job: TrainingJob) -> None:
    """BitFit (biases), LayerNorm tuning (norm weights) and freezing the first N layers, by requires_grad."""
    torch = require("torch")
    layers = decoder_layers(model)
    frozen_layers = {id(p) for layer in list(layers)[: job.peft.freeze_layers] for p in layer.parameters()}
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.LayerNorm) or "norm" in type(m).__name__.lower()
        for p in m.parameters(recurse=False)
    }
    for name, param in model.named_parameters():
        if job.method is Method.BITFIT:
            param.requires_grad_(name.endswith(".bias"))
        elif job.method is Method.LAYERNORM:
            param.requires_grad_(id(param) in norm_params)
        else:
            param.requires_grad_(id(param) not in frozen_layers and id(param) not in embeddings)


def _quantize_base_nf4(model: Any, job: TrainingJob) -> None:
    """QLoRA: every linear of the base model but the head and the adapters holds NF4 weights.

    torchao's `to_nf4` stores 4-bit codes (n/2 bytes), an int8 scale per `quant_block_size` block and an fp
    scale per 256 scales (double quantization), as bitsandbytes' Params4bit does (Dettmers et al. 2023,
    section 3); torchao always double-quantizes. Its NF4 linear dequantizes the weight inside the op. On a CUDA
    device (`llmplan measure`) bitsandbytes' own `Linear4bit` is used instead (`_quantize_bnb_nf4`).
    """
    torch = require("torch")
    head = lm_head(model)
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head and "lora_" not in name
    ]
    if head.weight.device.type == "cuda":
        _quantize_bnb_nf4(model, linears, job)
        return
    try:
        nf4 = importlib.import_module("torchao.quantization")
        to_nf4 = nf4.to_nf4
    except (ImportError, AttributeError):
        raise MissingExtraError("tracing QLoRA", "torchao") from None
    if not job.peft.quant_double:
        raise LlmplanError(
            "quant_double: torchao's NF4 always double-quantizes; trace QLoRA with quant_double"
        )
    for _name, module in linears:
        weight = module.weight.detach()
        block = job.peft.quant_block_size
        # One fp scale per 256 int8 scales; torchao needs the scale count divisible by it, so tensors with
        # fewer blocks (tiny test models only) take the largest divisor instead of bitsandbytes' padding.
        scaler_block = math.gcd(weight.numel() // block, 256)
        module.weight = torch.nn.Parameter(to_nf4(weight, block, scaler_block), requires_grad=False)


def _quantize_bnb_nf4(model: Any, linears: list[tuple[str, Any]], job: TrainingJob) -> None:
    """QLoRA on a CUDA device (`llmplan measure`): each base linear replaced by bitsandbytes' `Linear4bit`.

    As transformers' `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")` loads it: NF4 codes,
    one absmax per `quant_block_size` block, double-quantized when `quant_double`, bf16 / fp16 compute in the
    base's dtype. `Params4bit` quantizes when it is moved to the device.
    """
    try:
        bnb = importlib.import_module("bitsandbytes")
    except ImportError:
        raise LlmplanError(
            "method: measuring qlora needs bitsandbytes, which is not installed: pip install 'llmplan[measure]'"
        ) from None
    for name, module in linears:
        device = module.weight.device
        quantized = bnb.nn.Linear4bit(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            compute_dtype=module.weight.dtype,
            compress_statistics=job.peft.quant_double,
            quant_type="nf4",
            device="meta",
        )
        quantized.weight = bnb.nn.Params4bit(
            module.weight.detach(),
            requires_grad=False,
            blocksize=job.peft.quant_block_size,
            compress_statistics=job.peft.quant_double,
            quant_type="nf4",
            module=quantized,
        ).to(device)
        if module.bias is not None:
            quantized.bias = module.bias
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, quantized)
