"""The calibration kernels of the GPU campaign: bf16 and fp8 GEMMs of transformer shapes, SDPA (flash and
memory-efficient backends) forward and backward, HBM copy bandwidth, an AdamW step.

Each kernel is timed with CUDA events after a warm-up call, repeated until about `MIN_TIMED_S` of work was
timed, on random data (zeros multiply faster on Hopper). Work counts follow the usual conventions:
- GEMM (m x k) @ (k x n): 2·m·n·k FLOPs; fp8 through `torch._scaled_mm` (e4m3 inputs, per-tensor fp32 scales,
  bf16 output), the path Transformer Engine and torchao's float8 training take;
- causal attention forward: 4·b·h·s²·d / 2 FLOPs, backward 2.5x the forward (FlashAttention-2, Dao 2023,
  section 4, and flash-attention's benchmarks/benchmark_flash_attention.py `flops`);
- copy: 2·bytes moved (each byte read once and written once), as nvbandwidth / KINDS.md count it;
- AdamW: 4 fp32 tensors read (param, grad, m, v) and 3 written per parameter, 28 bytes per parameter.
In a dry run every kernel is built and run once on fake tensors on the CPU: shapes and work counts are checked,
nothing is timed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

from device_cases import KernelCase

MIN_TIMED_S = 0.05
MAX_REPS = 200


def work(case: KernelCase) -> dict[str, float]:
    """FLOPs and bytes of one call of the kernel (module docstring)."""
    p = case.params
    if case.op.startswith("gemm-"):
        bytes_per = 2 if case.op == "gemm-bf16" else 1
        m, n, k = p["m"], p["n"], p["k"]
        return {"flops": 2.0 * m * n * k, "bytes": float(bytes_per * (m * k + n * k) + 2 * m * n)}
    if case.op.startswith("sdpa-"):
        fwd = 4.0 * p["batch"] * p["heads"] * p["seq"] ** 2 * p["head_dim"] / 2
        return {"flops": fwd, "flops_fwd_bwd": 3.5 * fwd}
    if case.op == "copy":
        return {"bytes": 2.0 * p["bytes"]}
    if case.op.startswith("adamw-"):
        return {"bytes": 28.0 * p["params"]}
    raise ValueError(f"op: {case.op!r} is not a campaign kernel")


def run(case: KernelCase, torch: Any, device: Any, *, dry: bool = False) -> dict[str, Any]:
    """Build and run the kernel: timed on `device`, or once on fake tensors (`dry`)."""
    ctx: Any = contextlib.nullcontext()
    if dry:
        from torch._subclasses.fake_tensor import FakeTensorMode

        ctx, device = FakeTensorMode(), torch.device("cpu")
    with ctx:
        torch.manual_seed(0)
        calls = _build(case, torch, device)
        out: dict[str, Any] = {"op": case.op, **case.params, **work(case)}
        for name, fn in calls.items():
            if dry:
                fn()
                continue
            out[f"{name}_s"] = _time(torch, fn)
    return out


def _build(case: KernelCase, torch: Any, device: Any) -> dict[str, Callable[[], Any]]:
    """The named calls to time for the case (one per kernel; SDPA: forward, and forward + backward)."""
    p, op = case.params, case.op
    if op == "gemm-bf16":
        a = torch.randn(p["m"], p["k"], device=device, dtype=torch.bfloat16)
        b = torch.randn(p["n"], p["k"], device=device, dtype=torch.bfloat16)
        return {"time": lambda: a @ b.t()}
    if op == "gemm-fp8":
        e4m3 = torch.float8_e4m3fn
        a = torch.randn(p["m"], p["k"], device=device).to(e4m3)
        b = torch.randn(p["n"], p["k"], device=device).to(e4m3)
        one = torch.ones((), device=device, dtype=torch.float32)
        return {
            "time": lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        }
    if op.startswith("sdpa-"):
        return _sdpa(p, op.removeprefix("sdpa-"), torch, device)
    if op == "copy":
        n = p["bytes"] // 2
        src = torch.randn(n, device=device, dtype=torch.bfloat16)
        dst = torch.empty_like(src)
        return {"time": lambda: dst.copy_(src)}
    if op.startswith("adamw-"):
        size = p["params"] // p["tensors"]
        params = [torch.randn(size, device=device, requires_grad=True) for _ in range(p["tensors"])]
        for q in params:
            q.grad = torch.randn_like(q)
        impl = op.removeprefix("adamw-")
        opt = torch.optim.AdamW(params, lr=1e-5, foreach=impl == "foreach", fused=impl == "fused")
        opt.step()  # creates the states; the timed steps update them
        return {"time": opt.step}
    raise ValueError(f"op: {op!r} is not a campaign kernel")


def _sdpa(p: dict[str, int], backend: str, torch: Any, device: Any) -> dict[str, Callable[[], Any]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernel = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend]
    if device.type == "cpu":  # the dry run: fake tensors take the math path; the shapes are what is checked
        kernel = SDPBackend.MATH
    shape = (p["batch"], p["heads"], p["seq"], p["head_dim"])
    q, k, v = (torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, device=device, dtype=torch.bfloat16)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def fwd() -> Any:
        with sdpa_kernel(kernel), torch.no_grad():
            return sdpa(q, k, v, is_causal=True)

    def fwd_bwd() -> Any:
        with sdpa_kernel(kernel):
            out = sdpa(q, k, v, is_causal=True)
        return torch.autograd.grad(out, (q, k, v), grad)

    return {"fwd": fwd, "fwd_bwd": fwd_bwd}


def _time(torch: Any, fn: Callable[[], Any]) -> float:
    """Mean seconds per call: one warm-up call, one call to size the repetitions, then the timed repetitions."""
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    once_s = start.elapsed_time(end) / 1e3
    reps = max(3, min(MAX_REPS, math.ceil(MIN_TIMED_S / max(once_s, 1e-6))))
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


def predicted(case: KernelCase, acc: Any) -> dict[str, float]:
    """The time model's seconds for the kernel (`llmplan.formulas.compute_time`): a GEMM at the MAMF fraction
    times its tile efficiency, the attention kernel at `flash_efficiency(seq)` (the memory-efficient backend
    is held to the same), a copy and the AdamW step at HBM_BANDWIDTH_FRACTION of the HBM bandwidth."""
    from llmplan.formulas import compute_time as ct
    from llmplan.formulas.flops import Gemm, Pass

    p, w = case.params, work(case)
    if case.op.startswith("gemm-"):
        gemm = Gemm(case.id, p["m"], p["n"], p["k"], 1, Pass.FORWARD)
        return {"time_s": ct.gemm_time(gemm, acc, case.op.removeprefix("gemm-"))}
    if case.op.startswith("sdpa-"):
        rate = acc.peak_flops("bf16") * ct.flash_efficiency(acc, p["seq"])
        return {"fwd_s": w["flops"] / rate, "fwd_bwd_s": w["flops_fwd_bwd"] / rate}
    return {"time_s": ct.memory_time(w["bytes"], acc)}


def rates(result: dict[str, Any], peak_flops_per_s: dict[str, float], bandwidth_bytes_per_s: float) -> dict:
    """Achieved rates of a measured kernel and their fraction of the datasheet peak (FLOP/s or bytes/s)."""
    op = str(result["op"])
    if op.startswith("gemm-"):
        rate = result["flops"] / result["time_s"]
        return {"flops_per_s": rate, "efficiency": rate / peak_flops_per_s[op.removeprefix("gemm-")]}
    if op.startswith("sdpa-"):
        fwd = result["flops"] / result["fwd_s"]
        both = result["flops_fwd_bwd"] / result["fwd_bwd_s"]
        peak = peak_flops_per_s["bf16"]
        return {"fwd_flops_per_s": fwd, "fwd_bwd_flops_per_s": both, "efficiency": both / peak}
    rate = result["bytes"] / result["time_s"]
    return {"bytes_per_s": rate, "efficiency": rate / bandwidth_bytes_per_s}
