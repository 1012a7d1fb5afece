"""The ground truth when a CUDA GPU is present: the traced step run for real on the device, random weights.

The model is built from its config directly on the GPU (no download), prepared exactly as the trace prepares
it (same peft application, same optimizer implementation, same two steps), and the step is timed and read from
PyTorch's own counters:

- `allocated`: `torch.cuda.max_memory_allocated()` (bytes in live tensors; what the trace estimates);
- `reserved`: `torch.cuda.max_memory_reserved()` (what the caching allocator holds);
- `device`: memory in use on the device as `torch.cuda.mem_get_info()` reports it after the step (total - free:
  reserved plus the CUDA context and library workspaces, what nvidia-smi shows), while the allocator still
  holds its peak reservation.

The counters start once the model is built and prepared (the build's own transient peak, such as QLoRA's
16-bit base before quantization, is not the step's). On the device QLoRA's base is quantized with
bitsandbytes (`Linear4bit`, as QLoRA runs), and the 8-bit AdamW optimizers are bitsandbytes' own (the
`measure` extra); the trace uses torchao's NF4, which stores the same bytes, and cannot run 8-bit AdamW.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmplan.errors import LlmplanError
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Layout, TrainingJob
from llmplan.trace import build, step


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasureResult:
    """One step measured on a CUDA device."""

    model: str
    mode: str
    """"train" or "infer"."""
    device_name: str
    device_total_bytes: int
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    device_used_bytes: int
    """total - free from `torch.cuda.mem_get_info` after the step."""
    step_time_s: float
    """Training: the second step (the first one creates the optimizer states). Inference: the prefill."""
    decode_time_per_token_s: float = 0.0
    torch_version: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """The `device` counter."""
        return self.device_used_bytes


def cuda_or_raise() -> object:
    """torch, when a CUDA device is visible; otherwise a LlmplanError that says what to use instead."""
    torch = build.require("torch")
    if not torch.cuda.is_available():
        raise LlmplanError(
            "measure: no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False, torch "
            f"{torch.__version__}); `llmplan trace` gives the same breakdown on fake tensors without a GPU"
        )
    return torch


def measure(
    spec: ModelSpec, work: TrainingJob | step.InferenceRun, *, layout: Layout | None = None
) -> MeasureResult:
    """Run the step of `work` on the current CUDA device and read its memory counters and time."""
    build.check_native(spec)
    training = isinstance(work, TrainingJob)
    if training:
        build.check_job(work)
        build.check_layout(layout)
        if layout is not None and layout.dp > 1:
            raise LlmplanError("dp: measure runs one GPU; measure dp 1 (or trace the sharded layout)")
    torch = cuda_or_raise()
    from llmplan.trace.tracker import Tracker

    device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    marks: list[float] = []

    def clock() -> None:
        torch.cuda.synchronize(device)
        marks.append(time.perf_counter())

    tracker = Tracker()
    tracker.stop()  # tags only; nothing is dispatched through it on the device
    with torch.device(device):
        torch.manual_seed(0)
        if training:
            model = build.build_model(
                spec,
                dtype=build.MODEL_DTYPE[work.precision],
                attention=build.attention_name(work.attention, work.recompute),
            )
            model = build.prepare_training(model, spec, work)
            _step_peaks_only(torch, device)
            step.train(model, work, tracker, spec.vocab_size, clock=clock)
        else:
            model = build.build_model(spec, dtype=work.dtype, attention=work.attention)
            _step_peaks_only(torch, device)
            step.infer(model, work, tracker, spec.vocab_size, clock=clock)
    free, total = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.max_memory_allocated(device)
    reserved = torch.cuda.max_memory_reserved(device)
    del model
    torch.cuda.empty_cache()
    if training:
        step_s = marks[3] - marks[2] if len(marks) >= 4 else marks[-1] - marks[0]
        decode_s = 0.0
    else:
        step_s = marks[1] - marks[0]
        decode_s = (marks[-1] - marks[1]) / max(1, len(marks) - 2)
    return MeasureResult(
        model=spec.name,
        mode="train" if training else "infer",
        device_name=torch.cuda.get_device_name(device),
        device_total_bytes=int(total),
        peak_allocated_bytes=int(allocated),
        peak_reserved_bytes=int(reserved),
        device_used_bytes=int(total - free),
        step_time_s=step_s,
        decode_time_per_token_s=decode_s,
        torch_version=str(torch.__version__),
    )


def _step_peaks_only(torch: object, device: object) -> None:
    """Start the peak counters at the prepared model, so that they hold the step's peak, not the build's.

    Preparing QLoRA builds the 16-bit base before quantizing it, which can exceed the step's own peak; the
    freed blocks are returned to the driver first so that `reserved` and `device` count the step too.
    """
    torch.cuda.synchronize(device)  # type: ignore[attr-defined]
    torch.cuda.empty_cache()  # type: ignore[attr-defined]
    torch.cuda.reset_peak_memory_stats(device)  # type: ignore[attr-defined]
