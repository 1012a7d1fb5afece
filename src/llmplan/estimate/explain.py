"""The arithmetic of a training estimate, step by step, each step with its formula and source.

`explain_training` returns typed steps; the CLI renders them (`llmplan train MODEL --explain`). Each step
states the formula in symbols, the same formula with this job's numbers, and the result in bytes, like a
worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.estimate.training import TrainingEstimate
from llmplan.formulas import overheads as ovf
from llmplan.formulas.model_states import (
    ADAPTER_BYTES,
    MIXED,
    PURE_16,
    WEIGHT_BYTES,
    rank_inventory,
    trainable_split,
)
from llmplan.specs.model import ModelSpec
from llmplan.specs.training import Method, Optimizer, OptimizerImpl


@dataclass(frozen=True, slots=True)
class ExplainStep:
    """One line of the worked example."""

    title: str
    formula: str
    """In symbols."""
    arithmetic: str
    """With this job's numbers."""
    result: int
    """Bytes, or parameters for the steps that count parameters (see `unit`)."""
    source: str
    unit: str = "bytes"
    """"bytes" or "parameters"."""

    @property
    def total(self) -> int:
        return self.result


def explain_training(model: ModelSpec, est: TrainingEstimate) -> tuple[ExplainStep, ...]:
    """The steps that lead from the model and job to `est` (same numbers, shown)."""
    job, layout, ms = est.job, est.layout, est.model_states
    split = trainable_split(model, job)
    inv = rank_inventory(model, layout.tp, layout.ep, layout.pp, est.stage)
    w = WEIGHT_BYTES[job.precision]
    s = 2 if job.precision in PURE_16 else 4
    n = ms.sharding_group
    zk = layout.sharding_stage
    steps = [
        ExplainStep(
            "parameters on this GPU",
            "N_rank = Σ linears in·out / (tp split) + norms + embedding/head on first/last stage",
            f"tp {layout.tp}, pp {layout.pp} (stage {est.stage}), ep {layout.ep}: {inv.total:,} of "
            f"{est.params:,}",
            inv.total,
            "formulas/model_states.py rank_inventory (Megatron column/row splits, Shoeybi et al. 2019 §3)",
            unit="parameters",
        ),
        ExplainStep(
            "trainable parameters",
            "full: N; LoRA: Σ r·(in + out) over targets; other PEFT per peft 0.21",
            f"{split.total:,} trainable ({split.base_trainable:,} base + {split.adapter:,} adapter), "
            f"{split.frozen:,} frozen",
            split.total,
            "formulas/peft.py (Hu et al. 2021 §4.1; equals peft get_nb_trainable_parameters)",
            unit="parameters",
        ),
        ExplainStep(
            "weights",
            "trainable·w + frozen·w (QLoRA: NF4 0.5 B + constants) + adapters·4 B, ÷ n if ZeRO-3",
            f"w = {w} B ({job.precision.value}); sharded over {n if zk >= 3 else 1} GPU(s)",
            ms.weights_bytes,
            "ZeRO paper §3.1 (Rajbhandari et al. 2020); QLoRA §3 (Dettmers et al. 2023)",
        ),
        ExplainStep(
            "fp32 master weights",
            "4 B × trainable (mixed precision only), ÷ n if ZeRO >= 1",
            f"{'4 B' if job.precision in MIXED else '0 B'} × trainable base; n = {n if zk >= 1 else 1}",
            ms.master_weights_bytes,
            "Micikevicius et al. 2018 §3.1; ZeRO paper §5.1",
        ),
        ExplainStep(
            "gradients",
            "w × trainable base + 4 B × adapters, ÷ n if ZeRO >= 2 (fp32 during a mixed-precision step)",
            f"{w} B/element; n = {n if zk >= 2 else 1}; at the optimizer step {ms.step_gradients_bytes:,} B"
            + (
                "; step in backward: one parameter at a time"
                if job.optimizer_impl is OptimizerImpl.IN_BACKWARD
                else ""
            ),
            ms.gradients_bytes,
            "ZeRO paper §5.2",
        ),
        ExplainStep(
            "optimizer states",
            _states_formula(job.optimizer),
            f"state dtype {s} B (adapters {ADAPTER_BYTES} B); n = {n if zk >= 1 else 1}",
            ms.optimizer_states_bytes,
            "torch.optim / bitsandbytes optim/optimizer.py / Shazeer & Stern 2018",
        ),
        ExplainStep(
            "optimizer-step temporaries",
            "foreach: one full-size state tensor of the group; fused and bitsandbytes: 0; for-loop: 2 × "
            "largest param",
            f"{job.optimizer_impl.value}, {job.optimizer.value}",
            ms.optimizer_temporaries_bytes,
            "torch/optim/adamw.py _multi_tensor_adamw (_foreach_sqrt); design.md 62.76 GiB trace",
        ),
        ExplainStep(
            "saved activations",
            "Σ layers of the stage × in-flight micro-batches (per-tensor HF accounting)",
            f"micro-batch {job.micro_batch_size} × {job.seq_len} tokens, recompute {job.recompute.value}, "
            f"attention {job.attention.value}",
            est.activations.layers_bytes + est.activations.embedding_bytes,
            "formulas/activations.py (Korthikanti et al. 2022 eq. 1, table 2, adapted to HF models)",
        ),
        ExplainStep(
            "logits and loss",
            "fp32 logits b·s·V·4 + loss gradient (chunked CE: one chunk)",
            f"V = {model.vocab_size:,}, chunked {job.chunked_ce}",
            est.activations.logits_loss_bytes,
            "formulas/logits.py",
        ),
        ExplainStep(
            "communication buffers",
            "DeepSpeed ZeRO-3: max(layer, head kept across the forward-backward turn) + 0.9·h² prefetch, "
            "h² reduce bucket; FSDP: root + 2 units in param_dtype; DDP: a bucket copy of the gradients; "
            "ZeRO-1/2 reduce 5e8",
            f"dp {layout.dp}, zero {zk}, fsdp {layout.fsdp.value if layout.fsdp else 'no'}",
            ms.gather_buffers_bytes + ms.reduce_buffers_bytes,
            "DeepSpeed partitioned_param_coordinator.py, HF 'auto' values; torch DDP gradient_as_bucket_view; "
            "FSDP limit_all_gathers",
        ),
    ]
    for phase in est.phases:
        b = phase.breakdown
        steps.append(
            ExplainStep(
                f"phase: {phase.phase.value}",
                "weights + master + grads + states + activations + logits + temporaries + buffers",
                f"{b.weights_bytes:,} + {b.master_weights_bytes:,} + {b.gradients_bytes:,} + "
                f"{b.optimizer_states_bytes:,} + {b.activations_bytes:,} + {b.logits_loss_bytes:,} + "
                f"{b.temporaries_at_peak_bytes:,} + {b.comm_buffers_bytes:,}",
                phase.total,
                "estimate/training.py (max over phases, not a sum)",
            )
        )
    ov = est.overheads
    steps += [
        ExplainStep(
            "allocated (peak)",
            "max over phases + cuBLAS workspace",
            f"peak at {est.peak_phase.value} + {ov.cublas_workspace_bytes:,}",
            est.allocated_bytes,
            "aten CublasHandlePool.cpp getChosenWorkspaceSize",
        ),
        ExplainStep(
            "reserved",
            f"allocated × (1 + {ovf.FRAGMENTATION}) (512 B rounding, fragmentation)",
            f"+ {ov.allocator_gap_bytes:,}",
            est.reserved_bytes,
            "c10/cuda/CUDACachingAllocator.cpp; fraction assumed (formulas/overheads.py)",
        ),
        ExplainStep(
            "device (nvidia-smi)",
            "reserved + CUDA context + NCCL buffers",
            f"+ {ov.cuda_context_bytes:,} + {ov.nccl_bytes:,}",
            est.device_bytes,
            "formulas/overheads.py",
        ),
        ExplainStep(
            "verdict",
            "capacity - device",
            f"{est.capacity_bytes:,} - {est.device_bytes:,} = {est.headroom_bytes:,}",
            est.headroom_bytes,
            "accelerator catalog",
        ),
    ]
    if job.method is Method.QLORA:
        steps.insert(
            3,
            ExplainStep(
                "NF4 base",
                "n/2 + n/64 (uint8 absmax) + 4·n/(64·256) (fp32) per linear weight",
                f"{inv.block_linear_weights:,} weights → {inv.nf4_bytes:,} B (≈ 4.127 bits each)",
                inv.nf4_bytes,
                "QLoRA §3 (Dettmers et al. 2023); bitsandbytes Params4bit",
            ),
        )
    return tuple(steps)


def _states_formula(optimizer: Optimizer) -> str:
    return {
        Optimizer.ADAMW: "2 states (m, v) × s × trainable",
        Optimizer.PAGED_ADAMW: "2 states × s × trainable, in unified memory (evictable)",
        Optimizer.ADAM8BIT: "2 × (1 B + 4 B / 256) × trainable (block-wise absmax)",
        Optimizer.PAGED_ADAMW_8BIT: "2 × (1 B + 4 B / 256) × trainable, paged",
        Optimizer.SGD: "no state",
        Optimizer.SGD_MOMENTUM: "1 state × s × trainable",
        Optimizer.LION: "1 state × s × trainable",
        Optimizer.ADAFACTOR: "(rows + cols) per matrix, numel per vector, × s",
    }[optimizer]
