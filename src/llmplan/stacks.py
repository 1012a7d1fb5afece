"""Each training stack's defaults, as data: what the estimate assumes when the user names only the stack.

One record per `llmplan.specs.training.Stack`. The estimate (`estimate.training`) resolves the record for the
model (`resolve`) and hands the concrete numbers to the formulas as explicit arguments; `llmplan train` prints
them, and the launch-config writers reuse the same records. A value that the stack fills from the model
("auto" in the transformers DeepSpeed integration) is a `HiddenScaled` rule, resolved with the model's hidden
size.

What the records hold and where it enters:
- `autocast` / `autocast_with_zero`: whether pure 16-bit weights run under `torch.autocast`, which keeps the
  cross-entropy and log-softmax in fp32 (torch.amp autocast op lists) — the loss dtype of `formulas.logits`;
- `loss_fp32`: the stack's own loss upcasts the logits to fp32 whatever the model's loss does;
- `deepspeed`: ZeRO bucket, prefetch and persistence sizes (`formulas.model_states` buffers);
- `fsdp_prefetch_units`, `fsdp_gather_16bit`: FSDP units gathered beyond the current one, and whether they are
  gathered in bf16 under amp-bf16 (a mixed-precision policy);
- `ddp_bucket_copy`: DDP keeps a bucket copy of every gradient (`gradient_as_bucket_view=False`);
- `nccl_bytes_per_communicator`: NCCL buffers of each process group (`formulas.overheads`);
- `alloc_conf`: the `PYTORCH_CUDA_ALLOC_CONF` the stack sets; recorded for launch configs, not modelled (the
  allocator gap is one fraction for every stack, `formulas.overheads.FRAGMENTATION`);
- `zero_stages`, `fsdp`: which sharding the stack can run (others are refused, naming the stack);
- `adapter_dtype`: the dtype of PEFT adapters' weights, gradients and optimizer states when `--adapter-dtype`
  is not given (`formulas.model_states`, `formulas.layer_activations`): fp32 where peft's `get_peft_model`
  runs with its default `autocast_adapter_dtype=True` (peft/tuners/tuners_utils.py `_cast_adapter_dtype`
  upcasts bf16 / fp16 adapters to fp32; LLaMA-Factory model/adapter.py also casts trainable parameters to
  fp32 unless pure bf16), bf16 where the recipe builds the whole model, adapters included, in bf16
  (torchtune recipes/lora_finetune_*.py under `training.set_default_dtype(self._dtype)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LayoutError
from llmplan.formulas.overheads import NCCL_BYTES_PER_COMMUNICATOR
from llmplan.specs.training import AdapterDtype, Layout, Stack


@dataclass(frozen=True, slots=True)
class HiddenScaled:
    """A size transformers fills from the model's hidden size h when the DeepSpeed config says "auto":
    factor · h^power elements (transformers integrations/deepspeed.py `trainer_config_finalize`)."""

    factor: float
    power: int

    def elems(self, hidden: int) -> int:
        value: float = self.factor
        for _ in range(self.power):
            value = value * hidden
        return int(value)

    def describe(self) -> str:
        h = "h" if self.power == 1 else f"h^{self.power}"
        return f"auto = {self.factor:g}·{h}"


Elems = int | HiddenScaled
"""A number of elements, fixed or filled from the hidden size."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DeepSpeedDefaults:
    """DeepSpeed ZeRO sizes in elements (deepspeed/runtime/zero/config.py for the fixed defaults)."""

    reduce_bucket_zero12: Elems
    """`reduce_bucket_size` under ZeRO-1/2."""
    reduce_bucket_zero3: Elems
    """`reduce_bucket_size` under ZeRO-3 (its contiguous reduce bucket, stage3.py)."""
    prefetch_bucket: Elems
    """`stage3_prefetch_bucket_size`."""
    persistence_threshold: Elems
    """`stage3_param_persistence_threshold`: smaller parameters stay whole on every rank."""
    max_live: int
    """`stage3_max_live_parameters`."""
    max_reuse: int
    """`stage3_max_reuse_distance`."""
    sub_group: int
    """`sub_group_size`: the optimizer step and NVMe swapping work sub-group by sub-group."""
    nvme_optimizer_buffers: int = 4
    """`offload_optimizer.buffer_count`: pinned host swap buffers of one sub-group each (ZeRO-Infinity)."""
    nvme_param_buffers: int = 5
    """`offload_param.buffer_count`."""
    nvme_param_buffer_elems: int = 100_000_000
    """`offload_param.buffer_size`, elements."""


DS_DEFAULT = DeepSpeedDefaults(
    reduce_bucket_zero12=500_000_000,
    reduce_bucket_zero3=500_000_000,
    prefetch_bucket=50_000_000,
    persistence_threshold=100_000,
    max_live=1_000_000_000,
    max_reuse=1_000_000_000,
    sub_group=1_000_000_000,
)
"""DeepSpeed's own defaults (deepspeed/runtime/zero/config.py: reduce_bucket_size 5e8, stage3_prefetch_bucket_size
5e7, stage3_param_persistence_threshold 1e5, stage3_max_live_parameters 1e9, stage3_max_reuse_distance 1e9,
sub_group_size 1e9, offload_optimizer.buffer_count 4, offload_param.buffer_count 5 and buffer_size 1e8)."""
DS_HF_AUTO = DeepSpeedDefaults(
    reduce_bucket_zero12=500_000_000,
    reduce_bucket_zero3=HiddenScaled(1, 2),
    prefetch_bucket=HiddenScaled(0.9, 2),
    persistence_threshold=HiddenScaled(10, 1),
    max_live=1_000_000_000,
    max_reuse=1_000_000_000,
    sub_group=1_000_000_000,
)
"""The transformers Trainer with the ZeRO configs its users copy: ZeRO-3 sizes "auto" (h², 0.9·h², 10·h;
Qwen's ds_config_zero3.json, LLaMA-Factory examples/deepspeed/ds_z3_config.json), ZeRO-1/2 reduce bucket 5e8
as those repositories' ds_config_zero2.json / ds_z2_config.json set it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StackDefaults:
    """One stack's defaults (module docstring for where each enters the estimate)."""

    stack: Stack
    autocast: bool
    """Pure 16-bit weights (`--precision bf16 / fp16`) are trained under torch.autocast."""
    autocast_with_zero: bool
    """Autocast still applies when a ZeRO stage runs (False: DeepSpeed's engine casts the model itself)."""
    loss_fp32: bool
    """The stack's own cross-entropy upcasts the logits to fp32 (else the model's loss decides)."""
    deepspeed: DeepSpeedDefaults | None
    """ZeRO sizes; None when the stack does not run DeepSpeed."""
    zero_stages: tuple[int, ...]
    """ZeRO stages the stack runs (0: none)."""
    fsdp: bool
    """The stack runs FSDP."""
    fsdp_prefetch_units: int
    """FSDP units gathered ahead of the current one (backward / forward prefetch of one unit)."""
    fsdp_gather_16bit: bool
    """Under amp-bf16, FSDP gathers bf16 units (a mixed-precision policy with param_dtype bf16)."""
    ddp_bucket_copy: bool
    """DDP keeps a bucket copy of every gradient (torch DDP `gradient_as_bucket_view=False`)."""
    nccl_bytes_per_communicator: int
    alloc_conf: str
    """`PYTORCH_CUDA_ALLOC_CONF` the stack sets ("" = PyTorch's default); recorded, not modelled."""
    source: str
    adapter_dtype: AdapterDtype = AdapterDtype.FP32
    """PEFT adapters' weights, gradients and states unless `--adapter-dtype` says otherwise (module doc)."""


_HF = {
    "autocast": True,
    "autocast_with_zero": False,
    "loss_fp32": False,
    "deepspeed": DS_HF_AUTO,
    "zero_stages": (0, 1, 2, 3),
    "fsdp": True,
    "fsdp_prefetch_units": 1,
    "fsdp_gather_16bit": True,
    "ddp_bucket_copy": True,
    "nccl_bytes_per_communicator": NCCL_BYTES_PER_COMMUNICATOR,
    "alloc_conf": "",
}
_HF_SOURCE = (
    "transformers trainer.py (autocast for bf16/fp16 unless DeepSpeed manages half precision), "
    "integrations/deepspeed.py ('auto' values), accelerate utils/dataclasses.py FullyShardedDataParallelPlugin "
    "(mixed_precision bf16 -> MixedPrecision param_dtype bf16), DistributedDataParallelKwargs "
    "(gradient_as_bucket_view=False)"
)

DEFAULTS: dict[Stack, StackDefaults] = {
    Stack.HF_TRAINER: StackDefaults(stack=Stack.HF_TRAINER, source=_HF_SOURCE, **_HF),
    Stack.LLAMA_FACTORY: StackDefaults(
        stack=Stack.LLAMA_FACTORY, source="LLaMA-Factory runs the transformers Trainer; " + _HF_SOURCE, **_HF
    ),
    Stack.AXOLOTL: StackDefaults(
        stack=Stack.AXOLOTL, source="axolotl runs the transformers Trainer; " + _HF_SOURCE, **_HF
    ),
    Stack.UNSLOTH: StackDefaults(
        stack=Stack.UNSLOTH,
        source="unsloth runs the transformers Trainer (TRL); unsloth/__init__.py sets PYTORCH_CUDA_ALLOC_CONF; "
        + _HF_SOURCE,
        **{**_HF, "alloc_conf": "expandable_segments:True"},
    ),
    Stack.FSDP_ACCELERATE: StackDefaults(
        stack=Stack.FSDP_ACCELERATE,
        source=_HF_SOURCE,
        **{**_HF, "deepspeed": None, "zero_stages": (0,)},
    ),
    Stack.DEEPSPEED: StackDefaults(
        stack=Stack.DEEPSPEED,
        autocast=False,
        autocast_with_zero=False,
        loss_fp32=False,
        deepspeed=DS_DEFAULT,
        zero_stages=(0, 1, 2, 3),
        fsdp=False,
        fsdp_prefetch_units=1,
        fsdp_gather_16bit=False,
        ddp_bucket_copy=True,
        nccl_bytes_per_communicator=NCCL_BYTES_PER_COMMUNICATOR,
        alloc_conf="",
        source="deepspeed/runtime/engine.py (the bf16 / fp16 engines cast the model, no autocast), "
        "deepspeed/runtime/zero/config.py defaults",
    ),
    Stack.PYTORCH: StackDefaults(
        stack=Stack.PYTORCH,
        autocast=False,
        autocast_with_zero=False,
        loss_fp32=False,
        deepspeed=None,
        zero_stages=(0,),
        fsdp=True,
        fsdp_prefetch_units=1,
        fsdp_gather_16bit=False,
        ddp_bucket_copy=True,
        nccl_bytes_per_communicator=NCCL_BYTES_PER_COMMUNICATOR,
        alloc_conf="",
        source="torch DistributedDataParallel (gradient_as_bucket_view=False), FSDP2 fully_shard without a "
        "MixedPrecisionPolicy (gathers in the parameters' dtype), no autocast unless amp-bf16",
    ),
    Stack.TORCHTUNE: StackDefaults(
        stack=Stack.TORCHTUNE,
        autocast=False,
        autocast_with_zero=False,
        loss_fp32=True,
        deepspeed=None,
        zero_stages=(0,),
        fsdp=True,
        fsdp_prefetch_units=1,
        fsdp_gather_16bit=False,
        ddp_bucket_copy=True,
        nccl_bytes_per_communicator=NCCL_BYTES_PER_COMMUNICATOR,
        alloc_conf="",
        adapter_dtype=AdapterDtype.BF16,
        source="torchtune recipes (dtype bf16, no autocast; training.get_dtype; LoRA adapters built in bf16 "
        "under training.set_default_dtype), torchtune/modules/loss CEWithChunkedOutputLoss (logits chunks .float())",
    ),
    Stack.TORCHTITAN: StackDefaults(
        stack=Stack.TORCHTITAN,
        autocast=False,
        autocast_with_zero=False,
        loss_fp32=True,
        deepspeed=None,
        zero_stages=(0,),
        fsdp=True,
        fsdp_prefetch_units=1,
        fsdp_gather_16bit=True,
        ddp_bucket_copy=True,
        nccl_bytes_per_communicator=NCCL_BYTES_PER_COMMUNICATOR,
        alloc_conf="expandable_segments:True",
        source="torchtitan config (mixed_precision_param bfloat16 -> FSDP2 MixedPrecisionPolicy), "
        "components/loss.py cross_entropy_loss (pred.float()), run_train.sh (PYTORCH_CUDA_ALLOC_CONF)",
    ),
    Stack.MEGATRON: StackDefaults(
        stack=Stack.MEGATRON,
        autocast=False,
        autocast_with_zero=False,
        loss_fp32=True,
        deepspeed=None,
        zero_stages=(0, 1),
        fsdp=False,
        fsdp_prefetch_units=1,
        fsdp_gather_16bit=False,
        ddp_bucket_copy=False,
        nccl_bytes_per_communicator=NCCL_BYTES_PER_COMMUNICATOR,
        alloc_conf="",
        source="megatron/core/distributed (gradients live in the contiguous grad buffer: no bucket copy), "
        "--use-distributed-optimizer (ZeRO-1), tensor_parallel/cross_entropy.py (fp32 vocab-parallel loss)",
    ),
}
"""The defaults of every stack."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StackSettings:
    """A stack's defaults resolved for one model and layout: the numbers the formulas receive."""

    stack: Stack
    autocast: bool
    """Pure 16-bit weights run under torch.autocast on this layout."""
    loss_fp32: bool
    ds_reduce_bucket_elems: int
    """DeepSpeed `reduce_bucket_size` for the layout's ZeRO stage (0 without DeepSpeed)."""
    ds_prefetch_elems: int
    ds_persistence_threshold_elems: int
    ds_max_live_elems: int
    ds_max_reuse_elems: int
    ds_sub_group_elems: int
    ds_nvme_optimizer_buffers: int
    ds_nvme_param_buffers: int
    ds_nvme_param_buffer_elems: int
    fsdp_prefetch_units: int
    fsdp_gather_16bit: bool
    ddp_bucket_copy: bool
    nccl_bytes_per_communicator: int
    alloc_conf: str
    adapter_dtype: AdapterDtype
    """PEFT adapters' dtype when the job does not set one."""


def defaults(stack: Stack) -> StackDefaults:
    return DEFAULTS[stack]


def resolve(layout: Layout, hidden_size: int) -> StackSettings:
    """The settings of `layout.stack` for a model of hidden size `hidden_size`; LayoutError when the stack
    cannot run the layout's sharding."""
    d = DEFAULTS[layout.stack]
    if layout.zero not in d.zero_stages:
        raise LayoutError(
            f"zero: stage {int(layout.zero)} does not run on stack {layout.stack.value} (allowed there: "
            f"{', '.join(str(z) for z in d.zero_stages)}; DeepSpeed stacks: hf-trainer, deepspeed, llama-factory, "
            "axolotl, unsloth)"
        )
    if layout.fsdp is not None and not d.fsdp:
        raise LayoutError(f"fsdp: stack {layout.stack.value} does not run FSDP (allowed there: no --fsdp)")
    ds = d.deepspeed or DS_DEFAULT
    bucket = ds.reduce_bucket_zero3 if layout.zero == 3 else ds.reduce_bucket_zero12
    return StackSettings(
        stack=layout.stack,
        autocast=d.autocast and (int(layout.zero) == 0 or d.autocast_with_zero),
        loss_fp32=d.loss_fp32,
        ds_reduce_bucket_elems=_elems(bucket, hidden_size),
        ds_prefetch_elems=_elems(ds.prefetch_bucket, hidden_size),
        ds_persistence_threshold_elems=_elems(ds.persistence_threshold, hidden_size),
        ds_max_live_elems=ds.max_live,
        ds_max_reuse_elems=ds.max_reuse,
        ds_sub_group_elems=ds.sub_group,
        ds_nvme_optimizer_buffers=ds.nvme_optimizer_buffers,
        ds_nvme_param_buffers=ds.nvme_param_buffers,
        ds_nvme_param_buffer_elems=ds.nvme_param_buffer_elems,
        fsdp_prefetch_units=d.fsdp_prefetch_units,
        fsdp_gather_16bit=d.fsdp_gather_16bit,
        ddp_bucket_copy=d.ddp_bucket_copy,
        nccl_bytes_per_communicator=d.nccl_bytes_per_communicator,
        alloc_conf=d.alloc_conf,
        adapter_dtype=d.adapter_dtype,
    )


def _elems(value: Elems, hidden: int) -> int:
    return value.elems(hidden) if isinstance(value, HiddenScaled) else value
