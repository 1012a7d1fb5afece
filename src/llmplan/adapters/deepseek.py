"""Adapters for DeepSeek-V2 and DeepSeek-V3 (transformers `models/deepseek_v2|v3/modeling_*.py`, v5.23).

Multi-head latent attention (DeepSeek-V2 paper, Liu et al. 2024, section 2.1), per layer:
- queries: `q_a_proj` (h -> q_lora_rank, bias = `attention_bias`), `q_a_layernorm`, `q_b_proj`
  (q_lora_rank -> heads·(qk_nope + qk_rope)); when `q_lora_rank` is null (V2-Lite) one `q_proj` instead;
- keys and values: `kv_a_proj_with_mqa` (h -> kv_lora_rank + qk_rope, bias = `attention_bias`),
  `kv_a_layernorm` (kv_lora_rank), `kv_b_proj` (kv_lora_rank -> heads·(qk_nope + v_head_dim));
- `o_proj` (heads·v_head_dim -> h, bias = `attention_bias`).
The first `first_k_dense_replace` layers have a dense SwiGLU MLP (`intermediate_size`); the others are MoE:
router `mlp.gate` (E x h), `n_routed_experts` routed experts of `moe_intermediate_size`, and one shared SwiGLU
MLP `mlp.shared_experts` of n_shared_experts·moe_intermediate_size. DeepSeek's own modeling file also requires
`layer_idx % moe_layer_freq == 0` for an MoE layer; transformers v5 ignores `moe_layer_freq`, and every
published config sets it to 1, where both agree.

V3 adds the router's `e_score_correction_bias` (E per MoE layer), the bias of auxiliary-loss-free load
balancing (DeepSeek-V3 report, section 2.1.2). transformers v5 registers it as a buffer, not a parameter, so
it is left out of the count like `model.parameters()` leaves it out (14,848 floats in all, negligible memory).

DeepSeek-V3's multi-token-prediction module (`num_nextn_predict_layers` = 1: one more decoder layer with its
own projection and norms, about 14B of the published 685B) is not built by transformers and is not counted:
the count is that of the 671B main model.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, Group, Linear, MlaSpec, ModelSpec, MoeSpec, NormScope, Role, Tensor

CONTEXT = ("max_position_embeddings",)


def _mla(cfg: ConfigView) -> MlaSpec:
    return MlaSpec(
        kv_lora_rank=cfg.int("kv_lora_rank"),
        q_lora_rank=cfg.optional_int("q_lora_rank"),
        qk_nope_head_dim=cfg.int("qk_nope_head_dim"),
        qk_rope_head_dim=cfg.int("qk_rope_head_dim"),
        v_head_dim=cfg.int("v_head_dim"),
    )


def _attention(
    mla: MlaSpec, hidden: int, heads: int, bias: bool
) -> tuple[tuple[Linear, ...], tuple[Tensor, ...]]:
    """MLA projections (linears) and its two latent RMSNorms (tensors, counted with attention)."""
    att = Group.ATTENTION
    qk_head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    if mla.q_lora_rank is None:
        query: tuple[Linear, ...] = (
            Linear("self_attn.q_proj", hidden, heads * qk_head_dim, False, att, b.COL, Role.Q),
        )
        norms: tuple[Tensor, ...] = ()
    else:
        query = (
            Linear("self_attn.q_a_proj", hidden, mla.q_lora_rank, bias, att, b.REP, Role.Q_DOWN),
            Linear("self_attn.q_b_proj", mla.q_lora_rank, heads * qk_head_dim, False, att, b.COL, Role.Q_UP),
        )
        norms = b.norm("self_attn.q_a_layernorm", mla.q_lora_rank, b.RMS, group=att, scope=NormScope.LATENT)
    linears = (
        *query,
        Linear(
            "self_attn.kv_a_proj_with_mqa",
            hidden,
            mla.kv_lora_rank + mla.qk_rope_head_dim,
            bias,
            att,
            b.REP,
            Role.KV_DOWN,
        ),
        Linear(
            "self_attn.kv_b_proj",
            mla.kv_lora_rank,
            heads * (mla.qk_nope_head_dim + mla.v_head_dim),
            False,
            att,
            b.COL,
            Role.KV_UP,
        ),
        Linear("self_attn.o_proj", heads * mla.v_head_dim, hidden, bias, att, b.ROW, Role.OUT),
    )
    return linears, (
        *norms,
        *b.norm("self_attn.kv_a_layernorm", mla.kv_lora_rank, b.RMS, group=att, scope=NormScope.LATENT),
    )


def _moe(cfg: ConfigView) -> MoeSpec:
    expert_size = cfg.int("moe_intermediate_size")
    shared = cfg.int("n_shared_experts", minimum=0)
    return MoeSpec(
        num_experts=cfg.int("n_routed_experts"),
        experts_per_token=cfg.int("num_experts_per_tok"),
        expert_intermediate_size=expert_size,
        num_shared_experts=shared,
        shared_intermediate_size=shared * expert_size,
        router_fp32=True,  # DeepseekV2/V3 MoE gate: F.linear(hidden.float(), weight.float())
    )


def _moe_mlp(moe: MoeSpec, hidden: int, *, mlp_bias: bool) -> tuple[tuple[Linear, ...], tuple[Tensor, ...]]:
    linears: tuple[Linear, ...] = (
        b.router("mlp.gate", hidden, moe.num_experts),
        *b.routed_experts(
            "mlp.experts", hidden, moe.expert_intermediate_size, moe.num_experts, moe.experts_per_token
        ),
    )
    if moe.shared_intermediate_size:
        linears += b.gated_mlp(
            "mlp.shared_experts",
            hidden,
            moe.shared_intermediate_size,
            bias=mlp_bias,
            group=Group.SHARED_EXPERTS,
        )
    # V3's `e_score_correction_bias` (E floats per MoE layer) is a buffer in transformers, not a parameter: it
    # is left out of the parameter count, as `model.parameters()` leaves it out (14,848 floats in DeepSeek-V3).
    return linears, ()


def deepseek(cfg: ConfigView) -> ModelSpec:
    """DeepseekV2ForCausalLM and DeepseekV3ForCausalLM."""
    is_v3 = cfg.str("model_type", "deepseek_v3") == "deepseek_v3"
    mla = _mla(cfg)
    d = b.read_dims(cfg, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim)
    moe = _moe(cfg)
    mlp_bias = False if is_v3 else cfg.bool("mlp_bias", False)
    first_dense = cfg.int("first_k_dense_replace", 0, minimum=0)
    freq = cfg.int("moe_layer_freq", 1)
    att_linears, att_norms = _attention(mla, d.hidden, d.heads, cfg.bool("attention_bias", False))
    norms = b.norms(b.RMS, d.hidden, "input_layernorm", "post_attention_layernorm")
    blocks = []
    for i in range(d.layers):
        sparse = i >= first_dense and i % freq == 0
        if sparse:
            ffn, ffn_tensors = _moe_mlp(moe, d.hidden, mlp_bias=mlp_bias)
        else:
            ffn, ffn_tensors = b.gated_mlp("mlp", d.hidden, d.intermediate, bias=mlp_bias), ()
        blocks.append(
            Block(linears=(*att_linears, *ffn), tensors=(*att_norms, *ffn_tensors, *norms), moe=sparse)
        )
    arch = "DeepseekV3ForCausalLM" if is_v3 else "DeepseekV2ForCausalLM"
    family = b.Family(
        arch, b.GATED, b.RMS, b.ROPE, ("hidden_act", "silu"), positions=(CONTEXT, 4096 if is_v3 else 2048)
    )
    embedding = (b.embedding("model.embed_tokens.weight", d.vocab, d.hidden),)
    final = b.norms(b.RMS, d.hidden, "model.norm")
    return b.decoder(cfg, family, d, blocks, embedding, final, moe=moe, mla=mla)
