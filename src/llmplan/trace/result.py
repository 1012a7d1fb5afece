"""What a trace (or a measurement) returns: live bytes per category at the peak, the peak and its phase, and a
timeline of the step, in the vocabulary of the analytic engine's breakdown. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceBreakdown:
    """Bytes alive at one instant of the traced step, by what they are (each storage rounded to 512 bytes)."""

    weights_bytes: int = 0
    """Parameters and buffers as the model holds them (16-bit, fp32, or NF4 codes + scales)."""
    master_weights_bytes: int = 0
    """fp32 master copies of the trainable weights (mixed precision)."""
    gradients_bytes: int = 0
    optimizer_states_bytes: int = 0
    activations_bytes: int = 0
    """Tensors saved by the forward pass for backward (and the input ids)."""
    logits_bytes: int = 0
    """Saved tensors of the head and the loss: logits and their fp32 upcast."""
    temporaries_bytes: int = 0
    """Intermediates, activation gradients and optimizer scratch alive at that instant."""
    kv_cache_bytes: int = 0

    @property
    def total(self) -> int:
        return (
            self.weights_bytes
            + self.master_weights_bytes
            + self.gradients_bytes
            + self.optimizer_states_bytes
            + self.activations_bytes
            + self.logits_bytes
            + self.temporaries_bytes
            + self.kv_cache_bytes
        )

    def items(self) -> dict[str, int]:
        """Each term by its short name (the field name without `_bytes`), in field order."""
        return {
            "weights": self.weights_bytes,
            "master_weights": self.master_weights_bytes,
            "gradients": self.gradients_bytes,
            "optimizer_states": self.optimizer_states_bytes,
            "activations": self.activations_bytes,
            "logits": self.logits_bytes,
            "temporaries": self.temporaries_bytes,
            "kv_cache": self.kv_cache_bytes,
        }


@dataclass(frozen=True, slots=True)
class PhasePeak:
    """One phase of the step in the timeline: its highest and its final live bytes."""

    phase: str
    """setup, forward, backward, optimizer (training); prefill, decode (inference)."""
    step: int
    peak_bytes: int
    end_bytes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceResult:
    """The traced step: the `allocated` counter (`torch.cuda.max_memory_allocated`) per GPU."""

    model: str
    mode: str
    """"train" or "infer"."""
    peak: TraceBreakdown
    """Live bytes by category at the peak."""
    peak_phase: str
    peak_step: int
    timeline: tuple[PhasePeak, ...]
    total_params: int
    trainable_params: int
    num_layers: int
    traced_layers: tuple[int, ...]
    """Decoder layers in the models actually traced (two cut models when composed, else the full count)."""
    composed: bool
    ranks: int = 1
    """Data-parallel ranks simulated (FSDP full shard); 1 for a single-GPU step."""
    wall_s: float = 0.0
    counter: str = "allocated"
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Peak allocated bytes."""
        return self.peak.total

    @property
    def peak_allocated_bytes(self) -> int:
        return self.peak.total
