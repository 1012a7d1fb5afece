"""The constants of one engine iteration (`formulas.serving_step.StepModel`) for a model, job, cluster, engine.

Per tp rank and pp stage (layers split evenly, the embedding / head shares divided by pp like the weights in
`estimate.inference`):
- decoder-layer weight bytes = the format's weight bytes on a rank (`formulas.quant.weight_bytes`) − the
  vocab-parallel embedding − an untied head (both in the compute dtype);
- GEMM FLOPs per token = 2 · (active parameters − embedding − positions − norms − head) / tp;
- the GEMM peak is the weight format's compute dtype: fp8 formats the fp8 peak, int8 the int8 peak, 16-bit
  and weight-only 4-bit formats (GPTQ, AWQ, NF4, GGUF) the 16-bit peak;
- the TP, EP and PP groups sit on the cluster as `formulas.topology.comm_group` places them (tp innermost,
  ep inside the tp group as vLLM's --enable-expert-parallel lays it out, pp stages tp ranks apart).
"""

from __future__ import annotations

from llmplan.estimate.inference_memory import kv_dtype_bytes
from llmplan.formulas import kv_cache as kvf
from llmplan.formulas.comms import Collective
from llmplan.formulas.compute_time import mamf_fraction
from llmplan.formulas.parallel.tensor import shard_linear
from llmplan.formulas.params import count_params
from llmplan.formulas.quant import FLOAT_BYTES, weight_bytes
from llmplan.formulas.roofline import HBM_BANDWIDTH_FRACTION
from llmplan.formulas.serving_step import (
    EAGER_KERNELS_PER_LAYER,
    FLASH_ATTENTION_FLOPS_FRACTION,
    FUSED_KERNELS_PER_LAYER,
    StepModel,
    linear_cost,
)
from llmplan.formulas.topology import comm_group
from llmplan.specs.engines import EngineDefaults, ServingEngine
from llmplan.specs.hardware import Accelerator, Cluster
from llmplan.specs.inference import InferenceJob, QuantFormat
from llmplan.specs.model import Group, ModelSpec


def gemm_dtype(job: InferenceJob) -> str:
    """The dtype the GEMMs of this weight format run in (module docstring)."""
    if job.quant in (QuantFormat.FP8, QuantFormat.FP8_CHANNEL):
        return "fp8"
    if job.quant is QuantFormat.INT8:
        return "int8"
    return job.activation_dtype.value


def _peak(acc: Accelerator, dtype: str) -> float:
    if acc.supports(dtype):
        return acc.peak_flops(dtype)
    return acc.peak_flops("fp16") if acc.supports("fp16") else acc.peak_flops("fp32")


def build_step_model(
    model: ModelSpec, job: InferenceJob, cluster: Cluster, engine: EngineDefaults, *, ep: int = 1
) -> StepModel:
    """StepModel of one rank and stage (module docstring)."""
    acc = cluster.accelerator
    tp, pp = job.tp, job.pp
    params = count_params(model)
    act = FLOAT_BYTES[job.activation_dtype]
    w = weight_bytes(model, job.quant, compute_dtype=job.compute_dtype, tp=tp, group_size=job.group_size)
    vocab_h = model.vocab_size * model.hidden_size
    embed_bytes = params.embedding * act / tp
    head_bytes = vocab_h * act / tp
    layer_bytes = w.total - embed_bytes - (head_bytes if params.lm_head else 0)
    routed = layer_bytes * params.routed_experts / max(1, params.total - params.embedding - params.lm_head)
    layer_params = params.active_per_token - params.embedding - params.position - params.norm - params.lm_head
    moe = model.moe
    graphs = bool(engine.cuda_graphs.value)
    moe_layers = sum(1 for block in model.layers if block.moe)
    hf = engine.engine is ServingEngine.HF
    return StepModel(
        pp=pp,
        layers_per_stage=-(-model.num_hidden_layers // pp),
        layer_weight_bytes=(layer_bytes - routed) / pp,
        routed_weight_bytes=routed / pp,
        num_experts=moe.num_experts if moe else 0,
        experts_per_token=moe.experts_per_token if moe else 0,
        layer_flops_per_token=2.0 * layer_params / tp / pp,
        head_weight_bytes=head_bytes / pp,
        head_flops_per_row=2.0 * vocab_h / tp / pp,
        kv_bytes_per_token=kvf.kv_bytes_per_token(model, kv_dtype_bytes(job), tp) / pp,
        attn_flops_per_pair=4.0
        * model.num_hidden_layers
        * (model.num_attention_heads / tp)
        * _qk_dim(model)
        / pp,
        hbm_bytes_per_s=acc.memory_bandwidth_bytes_per_s * HBM_BANDWIDTH_FRACTION,
        gemm_flops_per_s=_peak(acc, gemm_dtype(job)) * mamf_fraction(acc),
        gemms=_gemms(model, tp, pp, (layer_bytes - routed) / pp),
        act_bytes=act,
        attn_flops_per_s=_peak(acc, job.activation_dtype.value) * FLASH_ATTENTION_FLOPS_FRACTION,
        tp_allreduce=linear_cost(Collective.ALL_REDUCE, comm_group(cluster, tp)),
        allreduces_per_layer=2 if tp > 1 else 0,
        ep_all_to_all=linear_cost(
            Collective.ALL_TO_ALL, comm_group(cluster, ep, collective=Collective.ALL_TO_ALL)
        ),
        moe_layers_per_stage=-(-moe_layers // pp) if ep > 1 else 0,
        pp_p2p=(
            linear_cost(Collective.P2P, comm_group(cluster, 2, stride=tp, collective=Collective.P2P))
            if pp > 1
            else (0.0, 0.0)
        ),
        hidden_bytes_per_token=float(model.hidden_size * act),
        dispatch_bytes_per_token=float((moe.experts_per_token if moe else 0) * model.hidden_size * act),
        kernels_per_layer=EAGER_KERNELS_PER_LAYER if hf else FUSED_KERNELS_PER_LAYER,
        graph_max_batch=int(engine.cuda_graph_max_batch.value) if graphs else 0,
        mixed_step_graphs=bool(engine.mixed_step_graphs.value),
    )


def _gemms(model: ModelSpec, tp: int, pp: int, dense_bytes: float) -> tuple[tuple[int, int, int, float], ...]:
    """(k, n, count, weight bytes of one) of the dense linears of one stage on one rank: each linear's tp shard
    (`formulas.parallel.tensor.shard_linear`), its share of the stage's dense weight bytes by element count."""
    shapes: dict[tuple[int, int], int] = {}
    for block in model.layers:
        for linear in block.linears:
            if linear.group is Group.ROUTED_EXPERTS:
                continue
            k, n = shard_linear(linear, model, tp)
            shapes[(k, n)] = shapes.get((k, n), 0) + linear.copies
    elems = sum(k * n * c for (k, n), c in shapes.items())
    per_elem = dense_bytes * pp / elems if elems else 0.0
    return tuple((k, n, -(-c // pp), k * n * per_elem) for (k, n), c in sorted(shapes.items()))


def _qk_dim(model: ModelSpec) -> int:
    if model.mla is not None:
        return model.mla.qk_nope_head_dim + model.mla.qk_rope_head_dim
    return model.head_dim
