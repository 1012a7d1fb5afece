"""Bytes of the model's head side in a training step: final norm, logits and the cross-entropy loss.

What transformers 5.x keeps at the end of forward, per token of a micro-batch (V = vocabulary, h = hidden,
e = bytes of the compute dtype; traced with saved_tensors_hooks on fake tensors, see tests/test_activations.py):

    final norm         4·h + 4 (+ e·h when its weight trains)          (same rule as every RMSNorm: `norm_bytes`)
    lm_head input      e·h, only when the head's weight trains (full training; a frozen head saves nothing)
    logits             e·V   the model output, alive until the loss backward (compute dtype)
    log-softmax        4·V   `ForCausalLMLoss` (transformers/loss/loss_utils.py) upcasts the logits with
                             `logits.float()` and calls `cross_entropy`, whose log_softmax saves its fp32
                             output; the fp32 upcast itself is freed as soon as log_softmax has run
    labels             8     the shifted labels (int64); transformers 5 shifts the labels with a pad, so there
                             is no shifted copy of the logits (transformers 4 had one: `logits[..., :-1, :]
                             .contiguous()`, another 4·V)

So a Llama-2 step at 2048 tokens keeps 2·32000 + 4·32000 = 192 kB per token = 375 MiB of logits and loss,
more than one decoder layer (365 MiB). Softcapped logits (Gemma 2, `final_logit_softcapping`) save the tanh
output and return `tanh(.) · cap`, a second (T, V) tensor: 2·e·V.

Backward transient above that set: nll_loss backward makes a fp32 (T, V) gradient and log_softmax backward a
second one before the first is freed: 8·V per token.

A loss without the upcast (`ModelSpec.loss_fp32_upcast` False: Qwen v1's remote code calls `CrossEntropyLoss`
on the model-dtype logits) run outside torch.autocast keeps its log-softmax output in the compute dtype, e·V
per token, and its two backward gradients are e·V each: 2·e·V. Under torch.autocast (amp-bf16) the upcast
happens anyway: `cross_entropy`, `log_softmax` and `nll_loss` are on autocast's fp32 list (torch.amp docs,
"CUDA Ops that can autocast to float32"). The forward's shifted copy of the logits (`.contiguous()`, e·V) dies
before the end of forward and stays below the backward transient.

Chunked cross-entropy (Liger's fused linear cross-entropy, Hsu et al. 2024, `LigerFusedLinearCrossEntropy`):
the head GEMM and the loss run chunk by chunk during forward and the gradient of the head input is computed
there and kept (e·h per token); no (T, V) tensor ever exists. A chunk holds about T·h / V tokens (Liger's
`chunk_size = next_power_of_2(ceil(BT / ceil(V / h)))`), whose logits in the compute dtype and fp32 gradient
(e + 4 bytes per element) are the transient.

Tensor parallel: Megatron's vocab-parallel head and cross-entropy split the logits and the fp32 softmax over
tp (Shoeybi et al. 2019, section 3); the final norm is split only with sequence parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

LABEL_BYTES = 8
"""int64 label per token, saved by nll_loss."""

FP32 = 4


@dataclass(frozen=True, slots=True)
class HeadBytes:
    """Head-side bytes of one micro-batch on the rank that owns the head."""

    norm_bytes: int
    """Final norm's saved tensors (and the head's input when the head trains)."""
    logits_bytes: int
    """Logits in the compute dtype (or, chunked, the head-input gradient kept instead)."""
    loss_bytes: int
    """Log-softmax output (fp32, or the compute dtype for a loss without the upcast), labels, the loss."""
    backward_transient_bytes: int
    """Largest transient of the loss backward above these bytes."""
    freed_before_backward_bytes: int
    """The compute-dtype logits the model returns, T · V · e / tp (part of `logits_bytes`): freed before the
    loss backward because a training loop keeps only the loss (HF Trainer's `compute_loss` drops the outputs
    before `accelerator.backward(loss)`; the trace engine does the same). 0 when chunked: never made."""

    @property
    def total(self) -> int:
        return self.norm_bytes + self.logits_bytes + self.loss_bytes


def head_bytes(
    *,
    tokens: int,
    vocab: int,
    hidden: int,
    compute_bytes: int,
    norm_per_token_bytes: int,
    head_input_bytes: int,
    tp: int,
    sequence_parallel: bool,
    chunked: bool,
    constant_bytes: int = 0,
    softcapped: bool = False,
    loss_elem_bytes: int = FP32,
) -> HeadBytes:
    """Head-side bytes for `tokens` tokens of one micro-batch (the formulas of the module docstring).

    `norm_per_token_bytes` comes from `activations.norm_bytes` (the final norm is an ordinary norm);
    `head_input_bytes` is the saved head input per token (e·h when the head trains, else 0);
    `constant_bytes`: token-independent saved tensors (autocast's bf16 copy of the head weight, Gemma's fp32
    1 + w of the final norm); `softcapped`: the head applies tanh softcapping (Gemma 2), whose saved tanh output
    and the returned logits are two (T, V) tensors in the compute dtype; `loss_elem_bytes`: bytes per element
    the cross-entropy runs in, 4 with the fp32 upcast (or under autocast), else the compute dtype's.
    """
    norm_split = tp if sequence_parallel else 1
    norm = tokens * (norm_per_token_bytes + head_input_bytes) // norm_split + constant_bytes // tp
    if chunked:
        chunk_tokens = min(tokens, _next_pow2(-(-tokens // -(-vocab // hidden))))
        return HeadBytes(
            norm_bytes=norm,
            logits_bytes=tokens * compute_bytes * hidden // norm_split,
            loss_bytes=FP32,
            backward_transient_bytes=chunk_tokens * vocab * (compute_bytes + FP32) // tp,
            freed_before_backward_bytes=0,
        )
    return HeadBytes(
        norm_bytes=norm,
        logits_bytes=(2 if softcapped else 1) * tokens * vocab * compute_bytes // tp,
        loss_bytes=tokens * vocab * loss_elem_bytes // tp + tokens * LABEL_BYTES + FP32,
        backward_transient_bytes=2 * tokens * vocab * loss_elem_bytes // tp,
        freed_before_backward_bytes=tokens * vocab * compute_bytes // tp,
    )


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
