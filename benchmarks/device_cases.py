"""The cases of the GPU measurement campaign (benchmarks/device_campaign.py): what each one runs, its analytic
estimate, and the `llmplan` command that runs the same case by hand.

Training cases are one step of `llmplan measure` (`llmplan.trace.measure.measure`, the traced step run for real)
on Llama-shaped models of 0.5B to 8B built from their catalog configs with random weights. Inference cases are
a prefill of `batch` prompts into a DynamicCache and greedy decode steps. Kernel cases calibrate the time model
(benchmarks/device_kernels.py). The list is data: the campaign, its dry run, the report and the tests read it.
No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmplan import catalog
from llmplan.errors import LlmplanError
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat
from llmplan.specs.training import (
    AttentionImpl,
    Layout,
    Method,
    Optimizer,
    OptimizerImpl,
    PeftSpec,
    Precision,
    Recompute,
    Stack,
    TrainingJob,
)

GPU = "h200-sxm-141gb"
"""The catalog accelerator of the analytic estimates (the lent machine's GPU)."""
SHORT_SEQ, LONG_SEQ = 1024, 4096
"""The two sequence lengths of the training cases."""
INFER_PROMPT, INFER_DECODE = 1024, 32
"""Prompt tokens prefilled per sequence and tokens decoded after the prefill in the inference cases."""
INFER_BATCHES = (1, 8, 64)
MEASURED_LAYOUT = Layout(stack=Stack.PYTORCH)
"""One GPU running the step as `llmplan measure` (and the trace) does: a plain PyTorch loop, no autocast."""

Q05, L1, L3, L8 = "qwen2.5-0.5b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"
ALL_LINEAR = PeftSpec(lora_rank=16, lora_alpha=32, lora_targets=("all-linear",))
"""LoRA / QLoRA r16 on every linear but the head (peft's all-linear)."""


@dataclass(frozen=True, slots=True)
class TrainCase:
    """One training step measured with `llmplan measure`."""

    id: str
    model: str
    job: TrainingJob

    @property
    def kind(self) -> str:
        return "train"

    def command(self) -> str:
        """The `llmplan measure` command of this case."""
        j = self.job
        parts = [
            f"llmplan measure {self.model} --method {j.method.value} --precision {j.precision.value}",
            f"--optimizer {j.optimizer.value} --optimizer-impl {j.optimizer_impl.value}",
            f"--seq {j.seq_len} --micro-batch {j.micro_batch_size} --recompute {j.recompute.value}",
            f"--attention {j.attention.value}",
        ]
        if j.method in (Method.LORA, Method.QLORA):
            targets = ",".join(j.peft.lora_targets)
            parts.append(
                f"--lora-rank {j.peft.lora_rank} --lora-alpha {j.peft.lora_alpha:g} --lora-targets {targets}"
            )
        return " ".join(parts) + " --json"


@dataclass(frozen=True, slots=True)
class InferCase:
    """Prefill of `batch` prompts of `prompt` tokens, then `decode` greedy steps, with a KV cache."""

    id: str
    model: str
    batch: int
    prompt: int = INFER_PROMPT
    decode: int = INFER_DECODE

    @property
    def kind(self) -> str:
        return "infer"

    def command(self) -> str:
        return (
            f"llmplan measure {self.model} --infer --batch {self.batch} --prompt {self.prompt} "
            f"--decode-steps {self.decode} --dtype bf16 --json"
        )


@dataclass(frozen=True, slots=True)
class KernelCase:
    """One calibration kernel: `op` with its shape parameters (benchmarks/device_kernels.py runs it)."""

    id: str
    op: str
    """gemm-bf16, gemm-fp8, sdpa, copy, adamw."""
    params: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "kernel"


def _job(
    method: Method = Method.FULL,
    precision: Precision = Precision.BF16_MIXED,
    optimizer: Optimizer = Optimizer.ADAMW,
    impl: OptimizerImpl = OptimizerImpl.FOREACH,
    seq: int = SHORT_SEQ,
    recompute: Recompute = Recompute.NONE,
    attention: AttentionImpl = AttentionImpl.SDPA,
) -> TrainingJob:
    peft = ALL_LINEAR if method in (Method.LORA, Method.QLORA) else PeftSpec()
    return TrainingJob(
        method=method,
        precision=precision,
        optimizer=optimizer,
        optimizer_impl=impl,
        seq_len=seq,
        recompute=recompute,
        attention=attention,
        peft=peft,
    )


def _train_id(model: str, job: TrainingJob) -> str:
    j = job
    opt = j.optimizer.value if j.optimizer is not Optimizer.ADAMW else f"adamw-{j.optimizer_impl.value}"
    return (
        f"train_{model}_{j.method.value}_{j.precision.value}_{opt}_{j.attention.value}_rc-{j.recompute.value}"
        f"_s{j.seq_len}"
    )


def _train(model: str, job: TrainingJob) -> TrainCase:
    return TrainCase(_train_id(model, job), model, job)


FUSED, FULL_RC, EAGER = OptimizerImpl.FUSED, Recompute.FULL, AttentionImpl.EAGER
BF16, ADAM8 = Precision.BF16, Optimizer.ADAM8BIT
LORA, QLORA = Method.LORA, Method.QLORA

TRAIN_CASES: tuple[TrainCase, ...] = (
    # full fine-tuning, bf16 weights and gradients, fp32 masters and AdamW states: foreach vs fused,
    # sdpa vs eager, recompute none vs full, two sequence lengths
    _train(Q05, _job()),
    _train(Q05, _job(impl=FUSED)),
    _train(Q05, _job(attention=EAGER)),
    _train(Q05, _job(recompute=FULL_RC)),
    _train(Q05, _job(seq=LONG_SEQ)),
    _train(L1, _job()),
    _train(L1, _job(impl=FUSED)),
    _train(L1, _job(attention=EAGER)),
    _train(L1, _job(recompute=FULL_RC, seq=LONG_SEQ)),
    _train(L1, _job(seq=LONG_SEQ)),
    _train(L3, _job()),
    _train(L3, _job(impl=FUSED)),
    _train(L3, _job(attention=EAGER)),
    _train(L3, _job(impl=FUSED, recompute=FULL_RC, seq=LONG_SEQ)),
    # 8B with fp32 masters and states (16 bytes per parameter) sits at the edge of the GPU's memory: the two
    # cases check the analytic verdict (fits / does not fit) against what the device does (runs / OOM)
    _train(L8, _job(impl=FUSED, recompute=FULL_RC)),
    _train(L8, _job(recompute=FULL_RC)),
    # pure bf16 with bitsandbytes 8-bit AdamW
    _train(L1, _job(precision=BF16, optimizer=ADAM8, seq=LONG_SEQ)),
    _train(L3, _job(precision=BF16, optimizer=ADAM8)),
    _train(L8, _job(precision=BF16, optimizer=ADAM8, recompute=FULL_RC, seq=LONG_SEQ)),
    # LoRA r16 all-linear on a bf16 base
    _train(L1, _job(method=LORA, precision=BF16)),
    _train(L3, _job(method=LORA, precision=BF16, seq=LONG_SEQ)),
    _train(L8, _job(method=LORA, precision=BF16)),
    _train(L8, _job(method=LORA, precision=BF16, recompute=FULL_RC, seq=LONG_SEQ)),
    # QLoRA: NF4 base (bitsandbytes on the GPU), r16 all-linear
    _train(L1, _job(method=QLORA, precision=BF16)),
    _train(L8, _job(method=QLORA, precision=BF16)),
    _train(L8, _job(method=QLORA, precision=BF16, recompute=FULL_RC, seq=LONG_SEQ)),
)

INFER_CASES: tuple[InferCase, ...] = tuple(
    InferCase(f"infer_{m}_b{b}_p{INFER_PROMPT}_d{INFER_DECODE}", m, b)
    for m in (L1, L8)
    for b in INFER_BATCHES
)

_GEMM_SHAPES = {
    # (N, K) of the Llama-3.1-8B linears: fused qkv, o_proj, fused gate+up, down_proj, lm_head
    "qkv": (6144, 4096),
    "o": (4096, 4096),
    "gate_up": (28672, 4096),
    "down": (4096, 14336),
    "lm_head": (128256, 4096),
}
_GEMM_TOKENS = (256, 1024, 4096, 16384)
"""M = tokens of a micro-batch (efficiency vs size)."""

KERNEL_CASES: tuple[KernelCase, ...] = (
    *(
        KernelCase(f"kernel_gemm-{dt}_{name}_m{m}", f"gemm-{dt}", {"m": m, "n": n, "k": k})
        for dt in ("bf16", "fp8")
        for name, (n, k) in _GEMM_SHAPES.items()
        for m in _GEMM_TOKENS
        if name != "lm_head" or m <= 4096
    ),
    *(
        KernelCase(
            f"kernel_sdpa-{backend}_s{s}",
            f"sdpa-{backend}",
            {
                "batch": 1,
                "heads": 32,
                "head_dim": 128,
                "seq": s,
            },  # Llama-3.1-8B heads (k, v repeated as HF does)
        )
        for backend in ("flash", "efficient")
        for s in (1024, 2048, 4096, 8192, 16384)
    ),
    *(KernelCase(f"kernel_copy_{mib}mib", "copy", {"bytes": mib * 2**20}) for mib in (64, 1024, 4096)),
    *(
        KernelCase(f"kernel_adamw-{impl}_{p // 10**6}m", f"adamw-{impl}", {"params": p, "tensors": 64})
        for impl in ("foreach", "fused")
        for p in (10**8, 10**9)
    ),
)

CASES = (*TRAIN_CASES, *INFER_CASES, *KERNEL_CASES)


def analytic_training(case: TrainCase, gpu: str = GPU) -> dict[str, object]:
    """The analytic engine's answer for the case on one GPU: the three counters, the peak phase, the verdict."""
    spec = load_model(case.model)
    cluster = Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=1)
    from llmplan.estimate.training import estimate_training

    est = estimate_training(spec, case.job, MEASURED_LAYOUT, cluster)
    return {
        "step_time_s": _step_time_s(spec, case.job, cluster),
        "gpu": gpu,
        "allocated_bytes": est.allocated_bytes,
        "reserved_bytes": est.reserved_bytes,
        "device_bytes": est.device_bytes,
        "peak_phase": est.peak_phase.value,
        "fits": est.fits,
        "params": est.params,
        "trainable_params": est.trainable_params,
    }


def _step_time_s(spec: object, job: TrainingJob, cluster: Cluster) -> float | None:
    """The time model's step (`llmplan.estimate.time`), None when it refuses the case."""
    from llmplan.estimate.time import estimate_time

    try:
        return estimate_time(spec, job, MEASURED_LAYOUT, cluster).step_s  # type: ignore[arg-type]
    except LlmplanError:
        return None


def analytic_inference(case: InferCase, gpu: str = GPU) -> dict[str, object]:
    """The analytic memory (counters) and roofline speed (TTFT, time per output token) of the case."""
    spec = load_model(case.model)
    job = InferenceJob(
        quant=QuantFormat.BF16,
        compute_dtype=QuantFormat.BF16,
        context_len=case.prompt + case.decode,
        prompt_len=case.prompt,
        batch=case.batch,
    )
    est = _estimate_inference(spec, job, gpu)
    m = est.memory
    return {
        "gpu": gpu,
        "allocated_bytes": m.allocated_bytes,
        "reserved_bytes": m.reserved_bytes,
        "device_bytes": m.device_bytes,
        "kv_cache_bytes": m.kv_cache_bytes,
        "fits": est.fits,
        "ttft_s": est.speed.ttft_s,
        "tpot_s": est.speed.tpot_s,
    }


def _estimate_inference(spec: object, job: InferenceJob, gpu: str) -> object:
    from llmplan.estimate.inference import estimate_inference

    cluster = Cluster(accelerator=catalog.accelerator(gpu), gpus_per_node=1)
    return estimate_inference(spec, job, cluster)  # type: ignore[arg-type]


def analytic(case: TrainCase | InferCase, gpu: str = GPU) -> dict[str, object]:
    """`analytic_training` or `analytic_inference`; {"error": why} when the analytic engine refuses the case."""
    try:
        if isinstance(case, TrainCase):
            return analytic_training(case, gpu)
        return analytic_inference(case, gpu)
    except LlmplanError as exc:
        return {"error": str(exc)}


def by_id() -> dict[str, TrainCase | InferCase | KernelCase]:
    return {c.id: c for c in CASES}
