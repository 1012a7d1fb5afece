"""One real step of the model, under the tracker: training (forward, loss, backward, optimizer step, twice) or
inference (prefill of a batch into a DynamicCache, then decode steps).

The step mirrors what a training loop on a GPU does, with the choices a CPU build would otherwise make
differently set explicitly: AdamW's `foreach` / `fused` implementation (the CUDA default is foreach; on the CPU
PyTorch picks a per-parameter loop), `zero_grad(set_to_none=True)` after each step (HF Trainer, torch default).

Mixed precision (`bf16-mixed`, `fp16-mixed`): the model holds 16-bit weights and gradients; the optimizer holds
fp32 master copies (ZeRO paper section 3.1, 16 bytes/param). Before each optimizer step the 16-bit gradients
are cast to fp32 one by one (each 16-bit gradient freed once cast), the step runs on the masters, the masters
are copied back into the 16-bit weights and the fp32 gradients freed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmplan.errors import LlmplanError, SpecError
from llmplan.specs.training import Optimizer, OptimizerImpl, Precision, TrainingJob
from llmplan.trace.build import decoder_layers, lm_head, require
from llmplan.trace.tracker import Cat, Tracker

TRAIN_STEPS = 2
"""Two steps: the optimizer states are created lazily inside the first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceRun:
    """What the inference trace runs: a batch of prompts prefilled together, then greedy decode steps."""

    batch_size: int = 1
    prompt_len: int = 2048
    decode_steps: int = 4
    dtype: str = "bfloat16"
    """Weights and KV cache dtype: float32, bfloat16 or float16."""
    attention: str = "sdpa"
    """transformers attention implementation: sdpa or eager."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "prompt_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(name, f"{value!r} is out of range (allowed: integers >= 1)")
        if not isinstance(self.decode_steps, int) or self.decode_steps < 0:
            raise SpecError("decode_steps", f"{self.decode_steps!r} is out of range (allowed: integers >= 0)")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise SpecError("dtype", f"{self.dtype!r} cannot be traced (allowed: float32, bfloat16, float16)")
        if self.attention not in ("sdpa", "eager"):
            raise SpecError("attention", f"{self.attention!r} cannot be traced (allowed: sdpa, eager)")


def install_markers(model: Any, tracker: Tracker) -> list[Any]:
    """Hooks that tell the tracker which decoder layer (or the head) runs, in forward and in backward.

    Forward: a pre-hook and a post-hook per layer. Backward: a gradient hook on each layer's output fires when
    the backward of that layer starts (its output's gradient is complete).
    """
    handles = []
    for i, layer in enumerate(decoder_layers(model)):
        handles.append(layer.register_forward_pre_hook(_pre_hook(tracker, i)))
        handles.append(layer.register_forward_hook(_post_hook(tracker, i)))
    handles.append(lm_head(model).register_forward_pre_hook(lambda *_: _mark_forward(tracker, "head", -1)))
    return handles


def _mark_forward(tracker: Tracker, kind: str, i: int) -> None:
    if tracker.current_phase.forward:
        tracker.segment(kind, i)


def _pre_hook(tracker: Tracker, i: int) -> Any:
    return lambda *_: _mark_forward(tracker, "layer", i)


def _post_hook(tracker: Tracker, i: int) -> Any:
    def hook(_module: Any, _args: Any, output: Any) -> None:
        if not tracker.current_phase.forward:
            return
        tracker.segment("post", i)
        out = output[0] if isinstance(output, (tuple, list)) else output
        if getattr(out, "requires_grad", False) and tracker.current_phase.name == "forward":
            out.register_hook(lambda _grad: tracker.segment("layer", i))

    return hook


def make_optimizer(job: TrainingJob, params: list[Any]) -> Any:
    """The torch optimizer of the job, with its implementation set explicitly."""
    torch = require("torch")
    impl = job.optimizer_impl
    multi = {"foreach": impl is OptimizerImpl.FOREACH, "fused": impl is OptimizerImpl.FUSED}
    if job.optimizer is Optimizer.ADAMW:
        return torch.optim.AdamW(params, lr=1e-5, **multi)
    if job.optimizer in (Optimizer.SGD, Optimizer.SGD_MOMENTUM):
        momentum = 0.9 if job.optimizer is Optimizer.SGD_MOMENTUM else 0.0
        return torch.optim.SGD(params, lr=1e-3, momentum=momentum, **multi)
    if job.optimizer in (Optimizer.ADAM8BIT, Optimizer.PAGED_ADAMW_8BIT):
        return _bnb_adamw8bit(job, params)
    raise LlmplanError(
        f"optimizer: {job.optimizer.value} cannot be traced (bitsandbytes and Lion optimizers are not in torch; "
        "torch's Adafactor reads tensor values, which fake tensors do not have); allowed: adamw, sgd, sgd-momentum"
    )


def _bnb_adamw8bit(job: TrainingJob, params: list[Any]) -> Any:
    """bitsandbytes' (paged) 8-bit AdamW, on a CUDA device only (`llmplan measure`).

    Its blockwise-quantized states (uint8 m and v plus one fp32 absmax per block; tensors under 4096 elements
    keep 32-bit states, bitsandbytes `min_8bit_size`) are built from real values, so fake tensors cannot run it.
    """
    if not params or params[0].device.type != "cuda":
        raise LlmplanError(
            f"optimizer: {job.optimizer.value} cannot be traced (bitsandbytes builds its 8-bit quantization map "
            "from real values, which fake tensors do not have); `llmplan measure` runs it on a CUDA GPU, the "
            "analytic engine (llmplan train) estimates it; allowed for a trace: adamw, sgd, sgd-momentum"
        )
    try:
        bnb = importlib.import_module("bitsandbytes")
    except ImportError:
        raise LlmplanError(
            f"optimizer: {job.optimizer.value} needs bitsandbytes, which is not installed: "
            "pip install 'llmplan[measure]'"
        ) from None
    make = bnb.optim.PagedAdamW8bit if job.optimizer is Optimizer.PAGED_ADAMW_8BIT else bnb.optim.AdamW8bit
    return make(params, lr=1e-5)


def _tag_states(tracker: Tracker, optimizer: Any) -> None:
    for state in optimizer.state.values():
        for value in state.values():
            if hasattr(value, "untyped_storage"):
                tracker.tag(value, Cat.OPTIMIZER_STATES)


def train(
    model: Any, job: TrainingJob, tracker: Tracker, vocab_size: int, clock: Callable[[], None] | None = None
) -> None:
    """Forward, loss, backward and optimizer step, `TRAIN_STEPS` times (grad accumulation: two micro-batches).

    `clock` is called at the start and at the end of every step (the measure engine times steps with it).
    """
    torch = require("torch")
    for p in model.parameters():
        tracker.tag(p, Cat.WEIGHTS)
    for b in model.buffers():
        tracker.tag(b, Cat.WEIGHTS)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise LlmplanError("method: no parameter is trainable for this job; nothing to trace")
    mixed = job.precision in (Precision.BF16_MIXED, Precision.FP16_MIXED)
    targets = trainable
    if mixed:
        targets = [torch.nn.Parameter(p.detach().float()) for p in trainable]
        for m in targets:
            tracker.tag(m, Cat.MASTER_WEIGHTS)
    for p in trainable:
        p.register_post_accumulate_grad_hook(lambda q: tracker.retag(q.grad, Cat.GRADIENTS))
    layer_of = {id(p): i for i, layer in enumerate(decoder_layers(model)) for p in layer.parameters()}
    in_backward = job.optimizer_impl is OptimizerImpl.IN_BACKWARD
    if in_backward:
        if mixed:
            raise LlmplanError("optimizer_impl: in-backward with a master-weight precision is not traced")
        per_param = {p: make_optimizer(_loop_job(job), [p]) for p in trainable}
        for p in trainable:
            p.register_post_accumulate_grad_hook(_step_in_backward(tracker, per_param[p]))
        optimizer = None
    else:
        optimizer = make_optimizer(job, targets)
    ids = torch.randint(0, vocab_size, (job.micro_batch_size, job.seq_len))
    tracker.tag(ids, Cat.ACTIVATIONS)
    autocast = (
        torch.autocast(ids.device.type, dtype=torch.bfloat16)
        if job.precision is Precision.AMP_BF16
        else contextlib.nullcontext()
    )
    model.train()
    tick = clock or (lambda: None)
    for step in range(TRAIN_STEPS):
        tick()
        for _micro in range(min(job.grad_accum_steps, 2)):
            tracker.phase("forward", step)
            with autocast:
                out = model(input_ids=ids, labels=ids, use_cache=False)
            loss = out.loss
            del out
            tracker.phase("backward", step)
            loss.backward()
            del loss
        if optimizer is None:
            tick()
            continue
        tracker.phase("optimizer", step)
        if mixed:
            for m, p in zip(targets, trainable, strict=True):
                tracker.segment("cast", layer_of.get(id(p), -1))
                m.grad = p.grad.float()
                tracker.retag(m.grad, Cat.GRADIENTS)
                p.grad = None
        tracker.segment("step", -1)
        optimizer.step()
        _tag_states(tracker, optimizer)
        if mixed:
            with torch.no_grad():
                for m, p in zip(targets, trainable, strict=True):
                    p.copy_(m)
        optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        tick()
    tracker.stop()


def _loop_job(job: TrainingJob) -> TrainingJob:
    from dataclasses import replace

    return replace(job, optimizer_impl=OptimizerImpl.FOR_LOOP)


def _step_in_backward(tracker: Tracker, optimizer: Any) -> Any:
    def hook(param: Any) -> None:
        optimizer.step()
        _tag_states(tracker, optimizer)
        optimizer.zero_grad(set_to_none=True)

    return hook


def infer(
    model: Any, run: InferenceRun, tracker: Tracker, vocab_size: int, clock: Callable[[], None] | None = None
) -> None:
    """Prefill `batch_size` prompts into a DynamicCache, then `decode_steps` greedy steps of one token each.

    As `generate` does, the prefill computes the logits of the last position only (`logits_to_keep=1`).
    """
    torch = require("torch")
    transformers = require("transformers")
    for p in model.parameters():
        tracker.tag(p, Cat.WEIGHTS)
    for b in model.buffers():
        tracker.tag(b, Cat.WEIGHTS)
    model.eval()
    ids = torch.randint(0, vocab_size, (run.batch_size, run.prompt_len))
    tracker.tag(ids, Cat.ACTIVATIONS)
    cache = transformers.DynamicCache(config=model.config)
    tick = clock or (lambda: None)
    with torch.no_grad():
        tick()
        tracker.phase("prefill", 0)
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        _tag_cache(tracker, cache)
        token = out.logits[:, -1:].argmax(-1)
        del out
        tick()
        for step in range(run.decode_steps):
            tracker.phase("decode", step)
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            _tag_cache(tracker, cache)
            token = out.logits[:, -1:].argmax(-1)
            del out
            tick()
    tracker.stop()


def _tag_cache(tracker: Tracker, cache: Any) -> None:
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "untyped_storage"):
                tracker.retag(t, Cat.KV_CACHE)


def cuda_dropout(model: Any) -> None:
    """Make every active `nn.Dropout` save what it saves on a CUDA device: a bool mask.

    On CUDA `F.dropout` dispatches to the fused `native_dropout` (aten/src/ATen/native/Dropout.cpp
    `is_fused_kernel_acceptable`: a CUDA input and 0 < p < 1), whose backward keeps a one-byte mask; on the CPU
    it multiplies by a noise tensor of the input's dtype, which the multiplication saves (4 bytes per element
    in fp32). The trace runs on the CPU and imitates the GPU, so dropout calls `native_dropout` itself.
    """
    torch = require("torch")
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and 0 < module.p < 1:
            module.forward = functools.partial(_native_dropout, torch, module)


def _native_dropout(torch: Any, module: Any, x: Any) -> Any:
    return torch.native_dropout(x, module.p, module.training)[0] if module.training else x
