"""Adapter for Qwen (v1: Qwen-1.8B / 7B / 14B / 72B), `model_type` "qwen", remote code only.

transformers has no native Qwen v1 class: the published repositories ship `modeling_qwen.py` (loaded with
`trust_remote_code`, which llmplan never does). The config is parsed as data, following that file's
`QWenBlock.__init__` (read through vLLM's port, `vllm/model_executor/models/qwen.py`, which loads the same
checkpoints):

- `transformer.wte` (vocab x hidden), no position table (RoPE, `rotary_emb_base`);
- per layer: RMSNorms `ln_1`, `ln_2`; attention `attn.c_attn` (hidden -> 3·hidden, fused q|k|v, with bias)
  and `attn.c_proj` (hidden -> hidden, no bias); MLP `mlp.w1`, `mlp.w2` (hidden -> intermediate_size / 2
  each, no bias) and `mlp.c_proj` (intermediate_size / 2 -> hidden, no bias): SwiGLU `c_proj(w1(x) *
  silu(w2(x)))`, so the config's `intermediate_size` counts both branches;
- final RMSNorm `transformer.ln_f`, untied `lm_head`;
- the loss: `QWenLMHeadModel.forward` shifts the logits (`lm_logits[..., :-1, :].contiguous()`) and calls
  `CrossEntropyLoss` on them in the model dtype, with no fp32 upcast (modeling_qwen.py of Qwen/Qwen-7B-Chat,
  read in the mirror undefdev/Qwen-7B-Chat at 04df5dd): `loss_fp32_upcast=False`.

Heads have `kv_channels` dimensions (128 in every published size); there is no GQA in v1.
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.specs.model import Block, Group, Linear, ModelSpec, Role

QWEN = b.Family("QWenLMHeadModel", b.GATED, b.RMS, b.ROPE, ("", "silu"))


def qwen(cfg: ConfigView) -> ModelSpec:
    """QWenLMHeadModel (Qwen v1 remote code)."""
    d = b.read_dims(cfg, head_dim=0)
    d = replace(d, head_dim=cfg.int("kv_channels", d.hidden // d.heads))
    cfg.divides("intermediate_size", d.intermediate, "2 (two SwiGLU branches)", 2)
    branch = d.intermediate // 2
    ffn = (
        Linear("mlp.w1", d.hidden, branch, False, Group.MLP, b.COL, Role.UP),
        Linear("mlp.w2", d.hidden, branch, False, Group.MLP, b.COL, Role.GATE),
        Linear("mlp.c_proj", branch, d.hidden, False, Group.MLP, b.ROW, Role.DOWN),
    )
    attn = b.fused_qkv_o("attn", d, qkv_bias=True, o_bias=False, names=("c_attn", "c_proj"))
    dtype = "bfloat16" if cfg.bool("bf16", False) else ("float16" if cfg.bool("fp16", False) else "bfloat16")
    return b.decoder(
        cfg,
        QWEN,
        replace(d, intermediate=branch),
        Block(attn + ffn, b.norms(b.RMS, d.hidden, "ln_1", "ln_2")),
        (b.embedding("transformer.wte.weight", d.vocab, d.hidden),),
        b.norms(b.RMS, d.hidden, "transformer.ln_f"),
        max_position_embeddings=cfg.int("max_position_embeddings", cfg.int("seq_length", 8192)),
        rope_theta=cfg.float("rotary_emb_base", 10000.0),
        rope_scaling=None,
        native_transformers=False,
        loss_fp32_upcast=False,
        torch_dtype=dtype,
    )
