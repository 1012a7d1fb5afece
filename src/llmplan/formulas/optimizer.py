"""Optimizer states and the optimizer step's temporaries, per trainable element.

States per trainable element: AdamW and paged AdamW 2, SGD 0, SGD with momentum 1, Lion 1 (Chen et al. 2023),
8-bit AdamW 2 × 1 byte + one fp32 absmax per block of `BNB_BLOCK` elements per state (bitsandbytes
optim/optimizer.py `Optimizer2State.init_state`, blockwise: `blocks = ceil(n / BNB_BLOCK)`; the
8-bit-optimizer paper, Dettmers et al. 2022 section 2, describes larger blocks than the library now uses),
Adafactor the factored second moment: rows + columns per matrix, the full tensor for vectors, no first moment
(Shazeer & Stern 2018 section 3; HF `transformers.optimization.Adafactor` with `beta1=None`). The bytes of a
state follow the precision (`formulas.model_states`).
"""

from __future__ import annotations

from llmplan.specs.training import Optimizer, OptimizerImpl, TrainingJob

STATES_PER_PARAM = {
    Optimizer.ADAMW: 2,
    Optimizer.PAGED_ADAMW: 2,
    Optimizer.SGD: 0,
    Optimizer.SGD_MOMENTUM: 1,
    Optimizer.LION: 1,
    Optimizer.ADAM8BIT: 2,
    Optimizer.PAGED_ADAMW_8BIT: 2,
    Optimizer.ADAFACTOR: 1,
}
EIGHT_BIT = frozenset({Optimizer.ADAM8BIT, Optimizer.PAGED_ADAMW_8BIT})
PAGED = frozenset({Optimizer.PAGED_ADAMW, Optimizer.PAGED_ADAMW_8BIT})
BNB_BLOCK = 256
"""bitsandbytes blockwise 8-bit optimizer block (optim/optimizer.py `Optimizer2State.init_state`)."""
FOREACH_TEMPS = {Optimizer.ADAMW: 1, Optimizer.LION: 1}
"""Full-size temporaries of torch's multi-tensor step, in state dtype, over the largest parameter group:
AdamW `_multi_tensor_adamw` allocates `exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs)` (every other op is
in place); Lion's update `sign(lerp(m, g))` one; SGD (momentum) updates in place (torch/optim/adamw.py,
sgd.py). Measured in design.md: Llama-2-7B bf16 AdamW foreach peak = weights + grads + states + one
full-size temporary."""
FOR_LOOP_TEMPS = 2
"""`_single_tensor_adamw`: `denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)` holds two
temporaries of one parameter for an instant; HF Adafactor's `update = grad**2 + eps` and its approximation
also two."""


def state_bytes_per_elem(optimizer: Optimizer, s_bytes: int) -> float:
    """Optimizer-state bytes per trainable element (Adafactor: see `model_states`, factored per tensor)."""
    if optimizer in EIGHT_BIT:
        return 2 * (1 + 4 / BNB_BLOCK)
    return STATES_PER_PARAM[optimizer] * s_bytes


def optimizer_temporaries(job: TrainingJob, trainable: int, largest: int, s_bytes: int) -> int:
    """Transient bytes of the optimizer step on the GPU.

    foreach: FOREACH_TEMPS full-size tensors of the largest parameter group (one group assumed: the states of
    all trainable elements on the rank); fused (torch `fused=True`, DeepSpeed FusedAdam) and every
    bitsandbytes optimizer (8-bit or paged: one CUDA kernel per parameter): none; for-loop and Adafactor:
    FOR_LOOP_TEMPS × the largest parameter; in-backward: the for-loop temporaries.
    """
    opt, impl = job.optimizer, job.optimizer_impl
    if opt in EIGHT_BIT or opt in PAGED or impl is OptimizerImpl.FUSED:
        return 0
    if opt is Optimizer.ADAFACTOR or impl in (OptimizerImpl.FOR_LOOP, OptimizerImpl.IN_BACKWARD):
        per = 4 if opt is Optimizer.ADAFACTOR else s_bytes
        return FOR_LOOP_TEMPS * largest * per if STATES_PER_PARAM[opt] else 0
    return FOREACH_TEMPS.get(opt, 0) * trainable * s_bytes
