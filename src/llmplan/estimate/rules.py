"""The seeds' rules of thumb, each computed by llmplan for the case it names (docs/rules-of-thumb.md).

Every rule appears twice where it can: configured exactly as the seed does (the row must agree to the byte or
the unit), and as llmplan's full model of a real job (the row shows how far the rule is and why). The
training rows are built here; the inference rows (the same `RuleCase`) come from
`estimate.rules_inference.inference_rules`. `benchmarks/rules_of_thumb.py` renders both sections.

Seeds (../shared/seeds, Chinese study notes): 000 fine-tuning memory of a 1B fp16 model; 001 the ZeRO paper's
16 bytes per parameter; 002 Llama-2-7B in fp32; 003 the 4 + 8 + 4 + 8 bytes-per-parameter table and LoRA's
parameter count; 000's training time (6 or 8 × N × D at ≤ 50 % utilisation) in `estimate.rules_time`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan import catalog
from llmplan.estimate.training import estimate_training
from llmplan.formulas.model_states import model_states
from llmplan.formulas.params import count_params
from llmplan.formulas.peft import lora_params
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.model import Group, Linear, Role, TpSplit
from llmplan.specs.training import Layout, Method, PeftSpec, Precision, TrainingJob


@dataclass(frozen=True, slots=True)
class RuleCase:
    """One rule of thumb applied to one case: the rule's number next to llmplan's."""

    seed: str
    """Seed file number (000-004)."""
    rule: str
    case: str
    rule_value: float
    llmplan_value: float
    why: str
    """Why they agree or differ."""
    unit: str = ""
    """Unit of the two values when they are not bytes or counts ("days")."""

    @property
    def total(self) -> float:
        return self.llmplan_value

    @property
    def ratio(self) -> float:
        """llmplan / rule."""
        return self.llmplan_value / self.rule_value if self.rule_value else float("nan")


def seed002_activation_bytes(hidden: int, intermediate: int, seq: int, layers: int, nbytes: int) -> int:
    """Seed 002's activation estimate: (h + I) · s · L · bytes per sample ((4096 + 11008) · 2048 · 32 · 4)."""
    return (hidden + intermediate) * seq * layers * nbytes


def training_rules() -> tuple[RuleCase, ...]:
    """Compute every training row (a few estimates of Llama-2-7B and Llama-3.2-1B)."""
    a100 = Cluster(accelerator=catalog.accelerator("a100-sxm-80gb"), gpus_per_node=1)
    one = Layout()
    llama7 = load_model("llama-2-7b")
    n7 = count_params(llama7).total
    llama1 = load_model("llama-3.2-1b")
    n1 = count_params(llama1).total

    fp32 = TrainingJob(precision=Precision.FP32)
    s32 = model_states(llama7, fp32, one)
    e32 = estimate_training(llama7, fp32, one, a100)
    mixed = TrainingJob(precision=Precision.BF16_MIXED)
    s16 = model_states(llama7, mixed, one)
    e16 = estimate_training(llama7, mixed, one, a100)
    fp16m = TrainingJob(precision=Precision.FP16_MIXED)
    s1 = model_states(llama1, fp16m, one)
    e1 = estimate_training(llama1, fp16m, one, a100)
    lora1 = TrainingJob(precision=Precision.FP16_MIXED, method=Method.LORA, peft=PeftSpec(lora_rank=8))
    e1_lora = estimate_training(llama1, lora1, one, a100)
    fp32_1 = TrainingJob(precision=Precision.FP32)
    s1_32 = model_states(llama1, fp32_1, one)
    e1_32 = estimate_training(llama1, fp32_1, one, a100)
    seed_act = seed002_activation_bytes(4096, 11008, 2048, 32, 4)
    lin = Linear(
        name="w",
        in_features=512,
        out_features=64,
        bias=False,
        group=Group.MLP,
        tp=TpSplit.COLUMN,
        role=Role.UP,
    )
    return (
        RuleCase(
            "002",
            "fp32 AdamW: weights 4 + gradients 4 + states 8 bytes per parameter",
            "Llama-2-7B fp32 AdamW, model-state bytes per parameter",
            16.0,
            s32.total / n7,
            "agrees exactly: 4 + 4 + 2 × 4",
        ),
        RuleCase(
            "002",
            "7B × 4 bytes = 28 GB of weights (and 28 GB of gradients, 56 GB of AdamW states)",
            "Llama-2-7B fp32 weights, bytes",
            28e9,
            s32.weights_bytes,
            "Llama-2-7B has 6,738,415,616 parameters, not 7e9: 26.95 GB (25.10 GiB); gradients alike, "
            "states 53.9 GB",
        ),
        RuleCase(
            "002",
            "activations ≈ (4096 + 11008) · 2048 · 32 · 4 ≈ 4 GB per sample",
            "Llama-2-7B fp32, 1 × 2048 tokens, sdpa: saved activations + logits, bytes",
            seed_act,
            e32.activations.total,
            "the seed keeps one (h + I)-wide fp32 tensor per token and layer (3.7 h); HF Llama saves q, k, "
            "v, the "
            "attention output, fp32 norm upcasts and three SwiGLU tensors: "
            f"{e32.activations.per_layer_bytes / (2048 * 4096 * 4):.1f} h-wide fp32 values per token and "
            f"layer, "
            f"plus {e32.activations.logits_loss_bytes / 1e9:.2f} GB of logits and loss",
        ),
        RuleCase(
            "002",
            "total = 112 GB + 4 GB × batch",
            "Llama-2-7B fp32 AdamW, batch 1 × 2048, peak device bytes",
            112e9 + seed_act,
            e32.device_bytes,
            f"the peak sits in the {e32.peak_phase.value} phase: foreach AdamW allocates one more full-size "
            f"fp32 "
            f"tensor ({e32.model_states.optimizer_temporaries_bytes / 1e9:.2f} GB) after the activations are "
            f"freed; allocator gap and CUDA context add {e32.overheads.total / 1e9:.2f} GB",
        ),
        RuleCase(
            "001",
            "mixed-precision Adam needs 16 bytes per parameter (ZeRO paper)",
            "bf16-mixed AdamW, model-state bytes per parameter",
            16.0,
            s16.total / n7,
            "agrees exactly: 2 (bf16 weights) + 2 (gradients) + 4 (fp32 master) + 8 (m, v)",
        ),
        RuleCase(
            "001",
            "a 7.5B model needs 120 GB",
            "7.5e9 parameters × llmplan's model-state bytes per parameter (bf16-mixed AdamW)",
            120e9,
            7.5e9 * s16.total / n7,
            "agrees exactly for the model states; activations, temporaries and overheads come on top",
        ),
        RuleCase(
            "001",
            "a 7B-class model needs 16 bytes per parameter",
            "Llama-2-7B bf16-mixed AdamW, batch 1 × 2048, peak device bytes",
            16.0 * n7,
            e16.device_bytes,
            f"peak in the {e16.peak_phase.value} phase: the gradients are cast to fp32 for the update of the "
            f"masters (+2 B/param) and the foreach step adds one fp32 temporary (4 B/param, "
            f"{e16.model_states.optimizer_temporaries_bytes / 1e9:.2f} GB) while every state is alive; "
            f"allocator "
            f"gap and CUDA context add {e16.overheads.total / 1e9:.2f} GB",
        ),
        RuleCase(
            "003",
            "fp32: weights 4 + Adam 8 + gradients 4 bytes per parameter (+ 8 for activations, estimated)",
            "Llama-3.2-1B fp32 AdamW, model-state bytes per parameter",
            16.0,
            s1_32.total / n1,
            "agrees exactly for the model states; the seed's fourth term (8 B/param of activations and "
            "temporaries) is a guess that llmplan computes",
        ),
        RuleCase(
            "003",
            "1B in fp32: load 4 GB, train 24 GB (4 + 20 bytes per parameter)",
            "Llama-3.2-1B fp32 AdamW, batch 1 × 2048, peak device bytes",
            24.0 * n1,
            e1_32.device_bytes,
            f"Llama-3.2-1B has {n1 / 1e9:.2f}B parameters; peak in the {e1_32.peak_phase.value} phase: "
            f"{e1_32.allocated_bytes / n1:.1f} B/param allocated (16 of model states, the rest activations, "
            f"logits or the step's temporaries) + {e1_32.overheads.total / 1e9:.2f} GB of overheads",
        ),
        RuleCase(
            "003",
            "LoRA r = 4 on a 512 × 64 weight trains 4 · (512 + 64) = 2304 parameters",
            "lora_params(512 × 64, r=4)",
            2304.0,
            lora_params([(0, lin)], 4),
            "agrees exactly: A is r × in, B is out × r (Hu et al. 2021)",
        ),
        RuleCase(
            "000",
            "1B fp16: weights 2 GB, gradients 2 GB, Adam states 8 GB",
            "Llama-3.2-1B fp16-mixed AdamW: weights + gradients + optimizer states, bytes per parameter",
            12.0,
            (s1.weights_bytes + s1.gradients_bytes + s1.optimizer_states_bytes) / n1,
            "agrees exactly for these three terms; mixed precision also keeps a 4 B fp32 master copy, which "
            "the "
            "seed leaves out (16 B/param in all)",
        ),
        RuleCase(
            "000",
            "full fine-tuning ≈ 20 × the parameter count in GB",
            "Llama-3.2-1B fp16-mixed AdamW, batch 1 × 2048, peak device bytes",
            20.0 * n1,
            e1.device_bytes,
            f"model states are 16 B/param; peak in the {e1.peak_phase.value} phase at "
            f"{e1.allocated_bytes / n1:.1f} B/param allocated; activations, logits (128k vocabulary) and the "
            f"{e1.overheads.total / 1e9:.2f} GB of overheads do not scale with the parameters",
        ),
        RuleCase(
            "000",
            "LoRA fine-tuning ≈ 1.3 × the parameter count in GB",
            "Llama-3.2-1B fp16 base, LoRA r 8 on q_proj, v_proj, batch 1 × 2048, peak device bytes",
            1.3 * n1,
            e1_lora.device_bytes,
            f"the frozen fp16 base is 2 B/param alone; the {e1_lora.memory.activations_bytes / 1e9:.2f} GB "
            f"of "
            f"activations and {e1_lora.memory.logits_loss_bytes / 1e9:.2f} GB of logits and loss at the "
            f"{e1_lora.peak_phase.value} peak do not shrink with LoRA",
        ),
    )


def all_rules() -> dict[str, tuple[RuleCase, ...]]:
    """Section title -> rows: "Training" (this module) and "Inference" (estimate.rules_inference)."""
    from llmplan.estimate.rules_inference import inference_rules
    from llmplan.estimate.rules_time import time_rules

    return {"Training": training_rules(), "Time": time_rules(), "Inference": inference_rules()}
