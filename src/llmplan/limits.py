"""Bounds of every numeric input: model config fields, job and layout options, serving settings.

One definition per bound; docs/limits.md explains each (what is allowed and why). Bounds are generous for real
models — a 10T-parameter MoE, a 10M-token context and 100k GPUs are all inside — and tight against nonsense,
so that no formula ever sees a zero, a NaN, an infinity or an absurd size (a 1e30-wide layer, 1e9 layers).

`Bound.problem` returns a `Problem` record (or None) so that callers can collect every problem before
raising; `Bound.check` raises SpecError at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import Problem, SpecError
from llmplan.units import GIB, KIB

K = KIB
M = 2**20
G = GIB


@dataclass(frozen=True, slots=True)
class Bound:
    """`low <= value <= high` (`low < value` when `low_open`), integers only unless `integer` is False."""

    low: float
    high: float
    why: str
    """The reason for the bound, as docs/limits.md states it."""
    integer: bool = True
    low_open: bool = False
    text: str = ""
    """What is allowed, in words, when the numbers themselves would not help (the fp64 range)."""

    @property
    def allowed(self) -> str:
        if self.text:
            return self.text
        kind = "integers" if self.integer else "numbers"
        low = f"> {_num(self.low)}" if self.low_open else f"{_num(self.low)}"
        if self.low_open:
            return f"{kind} {low} and <= {_num(self.high)}"
        return f"{kind} {low} to {_num(self.high)}"

    def problem(self, field: str, value: object) -> Problem | None:
        """The Problem of `value` for `field`, or None when it is inside the bound."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "an integer" if self.integer else "a number"
            return Problem.of(field, value, self.allowed, f"is not {kind}")
        if isinstance(value, float) and not math.isfinite(value):
            return Problem.of(field, value, self.allowed, "is not a finite number")
        if self.integer and not isinstance(value, int):
            return Problem.of(field, value, self.allowed, "is not an integer")
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            return Problem.of(field, _big(value), self.allowed, "is out of range")
        return None

    def check(self, field: str, value: object) -> None:
        """Raise SpecError when `value` is outside the bound."""
        found = self.problem(field, value)
        if found is not None:
            raise SpecError.of(found)


class OversizedInt(int):
    """An integer of more digits than any bound allows (parsed from a config.json without converting its
    digits): its value is 10**30, beyond every bound, and it prints as its size."""

    digits: int

    def __new__(cls, digits: int) -> OversizedInt:
        self = super().__new__(cls, 10**30)
        self.digits = digits
        return self

    def __repr__(self) -> str:
        return f"<a {self.digits}-digit integer>"

    __str__ = __repr__


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _big(value: float) -> object:
    """A value as shown in a message: integers of more than 30 digits by their size, not their digits."""
    if isinstance(value, int) and not isinstance(value, OversizedInt) and abs(value) >= 10**30:
        return f"<a {len(str(abs(value)))}-digit integer>"
    return value


# --- model config (HF config.json) -------------------------------------------------------------------------
# The largest published dense models have 126 layers and width 16,384 (Llama-3.1-405B), 25,600-wide MLPs
# scaled x4 (Falcon-180B: 14,848 x 4); the largest vocabularies ~256k (Gemma 262,144); DeepSeek-V3 has 256
# routed experts of which 8 per token. Each bound leaves at least 100x of room.
LAYERS = Bound(
    1,
    4 * K,
    "decoder layers: 126 in Llama-3.1-405B; the inventory holds one block per layer, so 4,096 keeps a parse under 0.5 s",
)
HIDDEN = Bound(1, M, "model width: 16,384 in Llama-3.1-405B, 18,432 in PaLM-540B")
INTERMEDIATE = Bound(1, 4 * M, "MLP / expert width: 53,248 in Llama-3.1-405B")
VOCAB = Bound(1, 16 * M, "vocabulary: 262,144 in Gemma 3")
HEADS = Bound(1, 64 * K, "attention (or kv) heads: 128 in Llama-3.1-405B and DeepSeek-V3")
HEAD_DIM = Bound(1, 64 * K, "per-head width: 256 in Gemma 2, 192 + 128 in DeepSeek-V3's MLA")
EXPERTS = Bound(1, 64 * K, "routed experts: 256 in DeepSeek-V3, 384 in Kimi K2")
POSITIONS = Bound(1, 2 * G, "context / max positions: 10M tokens (Llama 4 Scout) is inside")
CONFIG_INT = Bound(0, 2 * G, "any other integer config field (group counts, ranks, layer indices)")
PARAMS = Bound(1, 1e15, "total parameters: a 10T-parameter MoE is inside, 1000T is not")

# --- training job ---------------------------------------------------------------------------------------
SEQ_LEN = Bound(1, 2 * G, "tokens per sequence: 10M-token contexts are inside; checked against max positions")
MICRO_BATCH = Bound(1, M, "sequences per GPU per step")
GRAD_ACCUM = Bound(1, M, "gradient accumulation steps")
LORA_RANK = Bound(1, 64 * K, "LoRA rank r: 8 to 256 in practice; above the layer width it adds nothing")
LORA_ALPHA = Bound(0, M, "LoRA alpha (scale alpha / r)", integer=False, low_open=True)
LORA_DROPOUT = Bound(0, 0.999, "LoRA dropout probability p < 1", integer=False)
VIRTUAL_TOKENS = Bound(1, M, "prefix / prompt / p-tuning virtual tokens (20 to 100 in the papers)")
ADAPTER_SIZE = Bound(1, M, "bottleneck adapter width (64 in Houlsby et al.)")
FREEZE_LAYERS = Bound(0, 4 * K, "leading frozen layers (also at most the model's layers)")
QUANT_BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
"""bitsandbytes `quantize_4bit` block sizes (functional.py asserts blocksize in this set)."""

# --- layout and cluster ---------------------------------------------------------------------------------
DEGREE = Bound(1, M, "a parallel degree (dp, tp, pp, cp, ep): 100k-GPU clusters are inside")
GPUS = Bound(1, M, "GPUs in the job: 100k-GPU clusters are inside")
GPUS_PER_NODE = Bound(1, 4 * K, "GPUs per node / NVLink domain: 8 in a DGX, 72 in an NVL72 rack")
VIRTUAL_STAGES = Bound(1, 4 * K, "interleaved pipeline: virtual stages per rank")
ZERO_STAGES = (0, 1, 2, 3)

# --- inference / serving --------------------------------------------------------------------------------
BATCH = Bound(1, M, "sequences decoded together (concurrency)")
GROUP_SIZE = Bound(1, 64 * K, "GPTQ / AWQ group size (-1: one group per output channel); divides in_features")
VLLM_BLOCK_SIZES = (1, 8, 16, 32, 64, 128, 256)
"""vLLM `--block-size` choices (vllm/config/cache.py `BlockSize`)."""
GPU_MEMORY_UTILIZATION = Bound(0, 1, "vLLM memory fraction", integer=False, low_open=True)
BATCHED_TOKENS = Bound(1, 2 * G, "vLLM tokens per scheduler step")
MAX_NUM_SEQS = Bound(1, M, "vLLM sequences per scheduler step")
NUM_REQUESTS = Bound(
    1, 20_000, "simulated requests: each one is scheduled (~0.5 ms each), so the bound keeps a run short"
)
PRICE = Bound(0, 1000, "USD per GPU-hour (rentals are $0.2 to $15)", integer=False, low_open=True)
DECODE_STEPS = Bound(
    1, K, "traced / measured decode steps: each one is run (tens of ms traced), so the bound keeps it quick"
)

# --- number formats and filters ---------------------------------------------------------------------------
FP64_MAX = 1.7976931348623157e308
FORMAT_VALUE = Bound(-FP64_MAX, FP64_MAX, "a finite fp64 number", integer=False, text="finite numbers")
ABSMAX = Bound(
    0, FP64_MAX, "the tensor range of a scale", integer=False, low_open=True, text="finite numbers > 0"
)
BILLIONS = Bound(0, 1e6, "a parameter count in billions", integer=False)


def choice_problem(
    field: str, value: object, choices: tuple[int, ...], reason: str = "is not allowed"
) -> Problem | None:
    """The Problem of `value` not being one of `choices` (integers), or None."""
    if isinstance(value, bool) or value not in choices:
        return Problem.of(field, value, ", ".join(str(c) for c in choices), reason)
    return None


def tight_headroom(headroom_bytes: int, capacity_bytes: int, band_bytes: int = 0) -> str | None:
    """A warning when a job fits with little room: headroom under 5 % of capacity, under 2 GiB, or under the
    estimate's own expected error (`band_bytes`: p90 of |error| of measured jobs like it,
    `llmplan.estimate.error_bands`) — then the measured figure may well not fit.

    What usually eats such a margin: allocator fragmentation beyond the modelled rounding, longer sequences in
    a variable-length batch than the one planned, and a second process (a notebook, a monitoring agent) on the
    same GPU. 2 GiB is about what the CUDA context plus a profiler or a second small process take.
    """
    if headroom_bytes < 0:
        return None
    if headroom_bytes < TIGHT_FRACTION * capacity_bytes or headroom_bytes < TIGHT_BYTES:
        return (
            f"fits, but tight: headroom {headroom_bytes / G:.2f} GiB is under 5 % of {capacity_bytes / G:.2f} "
            "GiB or under 2 GiB; fragmentation, longer sequences in a variable-length batch or a second "
            "process on the GPU usually eat such a margin"
        )
    if headroom_bytes < band_bytes:
        return (
            f"fits, but tight: headroom {headroom_bytes / G:.2f} GiB is under the expected error of this "
            f"estimate ({band_bytes / G:.2f} GiB, p90 of measured jobs like it)"
        )
    return None


TIGHT_FRACTION = 0.05
TIGHT_BYTES = 2 * G


FIELD_BOUNDS: dict[str, Bound] = {
    "micro_batch_size": MICRO_BATCH,
    "seq_len": SEQ_LEN,
    "grad_accum_steps": GRAD_ACCUM,
    "lora_rank": LORA_RANK,
    "lora_alpha": LORA_ALPHA,
    "num_virtual_tokens": VIRTUAL_TOKENS,
    "adapter_size": ADAPTER_SIZE,
    "freeze_layers": FREEZE_LAYERS,
    "dp": DEGREE,
    "tp": DEGREE,
    "pp": DEGREE,
    "cp": DEGREE,
    "ep": DEGREE,
    "pp_virtual_stages": VIRTUAL_STAGES,
    "context_len": POSITIONS,
    "prompt_len": POSITIONS,
    "batch": BATCH,
    "max_num_batched_tokens": BATCHED_TOKENS,
    "max_num_seqs": MAX_NUM_SEQS,
    "gpus_per_node": GPUS_PER_NODE,
    "nodes": GPUS,
}
"""The bound of each numeric spec field (TrainingJob, PeftSpec, Layout, InferenceJob, VllmSettings, Cluster)."""


def check_field(name: str, value: object) -> None:
    """Raise SpecError when the spec field `name` is outside its bound (FIELD_BOUNDS)."""
    FIELD_BOUNDS[name].check(name, value)


CONFIG_BOUNDS: dict[str, Bound] = {
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "n_layers"), LAYERS),
    **dict.fromkeys(
        ("hidden_size", "n_embd", "d_model", "kv_lora_rank", "q_lora_rank", "word_embed_proj_dim"), HIDDEN
    ),
    **dict.fromkeys(
        (
            "intermediate_size",
            "ffn_dim",
            "n_inner",
            "ffn_hidden_size",
            "moe_intermediate_size",
            "shared_expert_intermediate_size",
            "inner_hidden_size",
        ),
        INTERMEDIATE,
    ),
    **dict.fromkeys(("vocab_size", "padded_vocab_size"), VOCAB),
    **dict.fromkeys(
        (
            "num_attention_heads",
            "n_head",
            "num_key_value_heads",
            "multi_query_group_num",
            "num_kv_heads",
            "n_head_kv",
        ),
        HEADS,
    ),
    **dict.fromkeys(
        ("head_dim", "kv_channels", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"), HEAD_DIM
    ),
    **dict.fromkeys(
        ("num_experts", "num_local_experts", "n_routed_experts", "n_shared_experts", "num_experts_per_tok"),
        EXPERTS,
    ),
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length", "sliding_window"),
        POSITIONS,
    ),
}
"""The bound of each config.json key that sizes the model (aliases of other families included)."""


def config_bound(key: str) -> Bound:
    """The bound of config key `key`: its own (CONFIG_BOUNDS) or that of any integer field (CONFIG_INT)."""
    return CONFIG_BOUNDS.get(key, CONFIG_INT)
