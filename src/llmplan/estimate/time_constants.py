"""The constants of the time model, each with its value, what it is and its source: what `--explain` lists."""

from __future__ import annotations

from llmplan.breakdown import Term, Unit
from llmplan.estimate.time_comms import HOST_MEMORY_BANDWIDTH_BYTES_PER_S, NVME_BYTES_PER_S
from llmplan.formulas import compute_time as ct
from llmplan.formulas.comms import NCCL_BASE_LATENCY_S
from llmplan.formulas.layout_comms import DDP_BUCKET_BYTES, OVERLAP_CONTENTION
from llmplan.specs.hardware import Accelerator


def constants(acc: Accelerator) -> tuple[Term, ...]:
    """The constants of the time model, each with its source (what --explain lists)."""
    arch = acc.architecture
    sustained = ct.SUSTAINED_FRACTION.get(arch, ct.SUSTAINED_FRACTION_DEFAULT)
    flash = ct.FLASH_EFFICIENCY.get(arch, ct.FLASH_EFFICIENCY_DEFAULT)
    rows = (
        ("mamf_fraction", ct.mamf_fraction(acc), Unit.RATIO, arch, "stas00/ml-engineering MAMF table"),
        (
            "sustained_fraction",
            sustained,
            Unit.RATIO,
            f"{arch}: achieved / MAMF in a whole step",
            "fitted on the 8-GPU llm-foundry rows (benchmarks/time_accuracy.py --fit)",
        ),
        (
            "hbm_bandwidth_fraction",
            ct.HBM_BANDWIDTH_FRACTION,
            Unit.RATIO,
            "achieved / peak HBM",
            "formulas.roofline (gpt-fast, vLLM decode bandwidth)",
        ),
        (
            "flash_efficiency",
            flash,
            Unit.RATIO,
            f"η_max · s/(s + {ct.FLASH_HALF_SEQ})",
            "FlashAttention-2 fig. 4; FlashAttention-3 fig. 5-6",
        ),
        (
            "triton_slowdown",
            ct.TRITON_SLOWDOWN,
            Unit.RATIO,
            "Triton FlashAttention vs FlashAttention-2",
            "FlashAttention-2 paper, fig. 4 and section 4.1",
        ),
        (
            "gemm_tile",
            ct.GEMM_TILE,
            Unit.COUNT,
            f"tile {ct.GEMM_TILE}², K step {ct.GEMM_TILE_K}",
            "NVIDIA Matrix Multiplication Background (tile quantization)",
        ),
        (
            "kernel_min_s",
            ct.KERNEL_MIN_S,
            Unit.SECONDS,
            "shortest kernel (launch)",
            "PyTorch CUDA-graphs blog 2021",
        ),
        (
            "loss_bytes_per_logit",
            ct.LOSS_BYTES_PER_LOGIT,
            Unit.BYTES,
            "fp32 upcast loss",
            "transformers ForCausalLMLoss",
        ),
        (
            "nccl_base_latency_s",
            NCCL_BASE_LATENCY_S,
            Unit.SECONDS,
            "per collective call",
            "NCCL src/graph/tuning.cc",
        ),
        (
            "ddp_bucket_bytes",
            DDP_BUCKET_BYTES,
            Unit.BYTES,
            "gradient all-reduce bucket",
            "torch DDP bucket_cap_mb=25",
        ),
        (
            "overlap_contention",
            OVERLAP_CONTENTION,
            Unit.RATIO,
            "compute lost per overlapped collective second",
            "NCCL kernels share SMs and HBM; fitted with sustained_fraction",
        ),
        (
            "host_memory_bandwidth_bytes_per_s",
            HOST_MEMORY_BANDWIDTH_BYTES_PER_S,
            Unit.BYTES_PER_S,
            "CPU optimizer step per node",
            "2 × 8 channels DDR4-3200 at half of nominal (STREAM)",
        ),
        (
            "nvme_bytes_per_s",
            NVME_BYTES_PER_S,
            Unit.RATIO,
            "one NVMe drive per GPU",
            "Samsung PM1733 datasheet",
        ),
    )
    return tuple(Term(name, value, unit, how, source) for name, value, unit, how, source in rows)
