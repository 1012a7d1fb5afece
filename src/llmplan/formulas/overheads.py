"""Memory that no tensor of the model accounts for: the CUDA context, library workspaces, NCCL buffers and the
caching allocator's gap between allocated and reserved bytes.

Counters (design.md, "Memory counters"): allocated = live tensors; reserved = allocated + `allocator_gap`;
device (nvidia-smi) = reserved + `cuda_context_bytes` + NCCL buffers (NCCL allocates with cudaMalloc, outside
PyTorch's allocator). The cuBLAS workspace is allocated through PyTorch's allocator and counts as allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.specs.hardware import Accelerator
from llmplan.units import MIB

CUDA_CONTEXT_BYTES_BY_ARCH = {
    "Volta": 1343 * 10**6,
    "Turing": 1343 * 10**6,
}
"""CUDA context + PyTorch's kernels, per architecture. Volta / Turing: 1343 MB measured by the HF performance
guide on a V100 (transformers docs `model_memory_anatomy`, "1343MB", measured.jsonl
`hf-perfdoc-bertlarge-weights-only`); PyTorch wheels of that era loaded every kernel eagerly."""
CUDA_CONTEXT_BYTES_DEFAULT = 500 * MIB
"""Ampere, Hopper, Ada, Blackwell with lazy module loading (`CUDA_MODULE_LOADING=LAZY`, default since
CUDA 11.7 and PyTorch 2.0): 300-600 MiB on A100 / H100. Training and inference (`estimate.inference`) both
read these constants."""
CUBLAS_WORKSPACE_BYTES = {"Hopper": 32 * MIB, "Blackwell": 32 * MIB}
"""cuBLAS workspace per handle (aten/src/ATen/cuda/CublasHandlePool.cpp `getChosenWorkspaceSize`): 32 MiB on
sm90 and newer; older GPUs use the CUBLAS_WORKSPACE_CONFIG default ":4096:2:16:8" = 2 × 4 MiB + 8 × 16 KiB.
Training runs forward and backward on one stream, so one workspace."""
CUBLAS_WORKSPACE_DEFAULT = 2 * 4096 * 1024 + 8 * 16 * 1024
NCCL_BYTES_PER_COMMUNICATOR = 128 * MIB
"""NCCL buffers per communicator that a rank joins: NCCL_BUFFSIZE 4 MiB per channel and peer (NCCL docs,
environment variables), 2-8 channels on NVLink, a few peers per ring: about 100-200 MiB; one per parallel
group (dp, tp, pp, cp, ep) with more than one rank. Every training stack's default (`llmplan.stacks`)."""
ALLOC_ROUND_BYTES = 512
"""The CUDA caching allocator rounds every request up to a multiple of 512 bytes
(c10/cuda/CUDACachingAllocator.cpp `kMinBlockSize`); a model's tensors are large, so this adds < 0.01 %."""
FRAGMENTATION = 0.05
"""Reserved bytes beyond allocated at the peak, as a fraction of allocated: large blocks are cut from 2 MiB-
rounded segments (`kLargeBuffer` 20 MiB, `kRoundLarge` 2 MiB) and freed blocks of different sizes cannot be
merged. An assumed round figure (typical reserved / allocated ratios in training logs are 1.02-1.15); to be
calibrated against the measured rows with both counters."""


@dataclass(frozen=True, slots=True)
class Overheads:
    """Per-GPU memory outside the model's tensors."""

    cuda_context_bytes: int
    """CUDA context + kernel images: nvidia-smi sees it, torch does not."""
    cublas_workspace_bytes: int
    """Inside torch's allocator (allocated)."""
    nccl_bytes: int
    """NCCL communicator buffers (device counter only)."""
    allocator_gap_bytes: int
    """reserved - allocated: 512-byte rounding + fragmentation."""

    @property
    def total(self) -> int:
        return (
            self.cuda_context_bytes + self.cublas_workspace_bytes + self.nccl_bytes + self.allocator_gap_bytes
        )


def cuda_context_bytes(accelerator: Accelerator) -> int:
    """CUDA context bytes for the accelerator's architecture (see CUDA_CONTEXT_BYTES_BY_ARCH)."""
    return CUDA_CONTEXT_BYTES_BY_ARCH.get(accelerator.architecture, CUDA_CONTEXT_BYTES_DEFAULT)


def cublas_workspace_bytes(accelerator: Accelerator) -> int:
    return CUBLAS_WORKSPACE_BYTES.get(accelerator.architecture, CUBLAS_WORKSPACE_DEFAULT)


def nccl_bytes(communicators: int, per_communicator_bytes: int) -> int:
    """NCCL buffers for `communicators` process groups with more than one rank, `per_communicator_bytes` each
    (the stack's, NCCL_BYTES_PER_COMMUNICATOR by default)."""
    return per_communicator_bytes * communicators


def allocator_gap_bytes(allocated_bytes: int, tensors: int = 0) -> int:
    """reserved - allocated = ALLOC_ROUND_BYTES / 2 per tensor on average + FRAGMENTATION × allocated."""
    return tensors * ALLOC_ROUND_BYTES // 2 + round(FRAGMENTATION * allocated_bytes)


def overheads(
    accelerator: Accelerator,
    allocated_bytes: int,
    communicators: int,
    tensors: int = 0,
    *,
    nccl_per_communicator_bytes: int,
) -> Overheads:
    """The overhead terms of one GPU whose live tensors peak at `allocated_bytes` (workspace excluded), with
    `nccl_per_communicator_bytes` of NCCL buffers per process group of more than one rank."""
    workspace = cublas_workspace_bytes(accelerator)
    return Overheads(
        cuda_context_bytes=cuda_context_bytes(accelerator),
        cublas_workspace_bytes=workspace,
        nccl_bytes=nccl_bytes(communicators, nccl_per_communicator_bytes),
        allocator_gap_bytes=allocator_gap_bytes(allocated_bytes + workspace, tensors),
    )
