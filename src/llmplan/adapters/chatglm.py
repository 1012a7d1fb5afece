"""Adapter for model_type "chatglm" (remote code, not in transformers), after THUDM's `modeling_chatglm.py`.

Two generations share the model_type and are told apart by their config keys:

ChatGLM-6B (v1; keys `inner_hidden_size`, `position_encoding_2d`, `vocab_size`, `max_sequence_length`): GLM
blocks with LayerNorm (weight + bias) `input_layernorm` / `post_attention_layernorm`, fused biased
`attention.query_key_value` (h -> 3h) and `attention.dense`, a plain GELU MLP `mlp.dense_h_to_4h` /
`mlp.dense_4h_to_h` of `inner_hidden_size` with biases, `transformer.final_layernorm`; 2-D rotary positions.
The `lm_head` is tied to `transformer.word_embeddings` (transformers' default `tie_word_embeddings`, which the
published config leaves unset; the model card's 6.2B counts the table once).

ChatGLM2-6B / ChatGLM3-6B / GLM-4-9B remote code (v2; keys `padded_vocab_size`, `ffn_hidden_size`,
`kv_channels`, `multi_query_attention`, `num_layers`): RMSNorm when `rmsnorm`;
`self_attention.query_key_value` of heads·kv_channels + 2·kv_channels·`multi_query_group_num` when
`multi_query_attention` (3·heads·kv_channels otherwise), biased when `add_bias_linear` or `add_qkv_bias`;
`self_attention.dense` and the MLP biased when `add_bias_linear`; SwiGLU with a fused `dense_h_to_4h` of
2·`ffn_hidden_size`; `final_layernorm` when `post_layer_norm`; an untied `transformer.output_layer` over
`padded_vocab_size`. The sizes are required; the flags default as in THUDM's `ChatGLMConfig`.
"""

from __future__ import annotations

from llmplan.adapters import _build as b
from llmplan.adapters._config import ConfigView
from llmplan.errors import SpecError
from llmplan.specs.model import Block, ModelSpec, NormKind

V1_KEYS = ("inner_hidden_size", "position_encoding_2d", "max_sequence_length")
V2_KEYS = ("padded_vocab_size", "ffn_hidden_size", "kv_channels", "multi_query_attention", "seq_length")


def chatglm(cfg: ConfigView) -> ModelSpec:
    """ChatGLMForConditionalGeneration (v1 or v2/3, chosen by which keys the config holds)."""
    if any(cfg.has(k) for k in V2_KEYS):
        return _chatglm2(cfg)
    if any(cfg.has(k) for k in V1_KEYS):
        return _chatglm1(cfg)
    raise SpecError(
        "model_type",
        f"'chatglm' config in {cfg.source} has neither ChatGLM-6B keys ({', '.join(V1_KEYS)}) nor "
        f"ChatGLM2/3 keys ({', '.join(V2_KEYS)}); cannot tell which architecture it is",
    )


GLM1 = b.Family("ChatGLMModel", b.PLAIN, b.LAYER, b.ROPE, ("", "gelu"), True, "float16")
GLM2 = b.Family("ChatGLMModel", b.GATED, b.RMS, b.ROPE, ("", "swiglu"), False, "float16")


def _chatglm1(cfg: ConfigView) -> ModelSpec:
    d = b.read_dims(
        cfg, layers=("num_layers", "num_hidden_layers"), intermediate=("inner_hidden_size",), inner_factor=4
    )
    qkv = b.fused_qkv_o("attention", d, qkv_bias=True, o_bias=True, names=("query_key_value", "dense"))
    h4h = b.plain_mlp("mlp", d.hidden, d.intermediate, bias=True, names=("dense_h_to_4h", "dense_4h_to_h"))
    ln = b.norms(b.LAYER, d.hidden, "input_layernorm", "post_attention_layernorm")
    words = [b.embedding("transformer.word_embeddings.weight", d.vocab, d.hidden)]
    final_ln = b.norms(b.LAYER, d.hidden, "transformer.final_layernorm")
    context = cfg.int("max_sequence_length", 2048)
    return b.decoder(
        cfg,
        GLM1,
        d,
        Block(qkv + h4h, ln),
        words,
        final_ln,
        max_position_embeddings=context,
        rope_theta=10000.0,
        rope_scaling=None,
        native_transformers=False,
    )


def _chatglm2(cfg: ConfigView) -> ModelSpec:
    vocab = cfg.int("padded_vocab_size")
    hidden = cfg.int("hidden_size")
    layers = cfg.int("num_layers")
    heads = cfg.int("num_attention_heads")
    head_dim = cfg.int("kv_channels")
    if cfg.bool("multi_query_attention", False):
        kv_heads = cfg.int("multi_query_group_num", 1)
        cfg.divides("num_attention_heads", heads, "multi_query_group_num", kv_heads)
    else:
        kv_heads = heads
    ffn = cfg.int("ffn_hidden_size")
    d = b.Dims(vocab, hidden, layers, heads, kv_heads, head_dim, ffn)
    bias = cfg.bool("add_bias_linear", False)
    kind = NormKind.RMS if cfg.bool("rmsnorm", True) else NormKind.LAYER
    attention = b.fused_qkv_o(
        "self_attention",
        d,
        qkv_bias=bias or cfg.bool("add_qkv_bias", False),
        o_bias=bias,
        names=("query_key_value", "dense"),
    )
    swiglu = b.gated_mlp(
        "mlp", hidden, ffn, bias=bias, fused=True, names=("dense_h_to_4h", "", "dense_4h_to_h")
    )
    norms = b.norms(kind, hidden, "input_layernorm", "post_attention_layernorm")
    final = (
        b.norms(kind, hidden, "transformer.encoder.final_layernorm")
        if cfg.bool("post_layer_norm", True)
        else ()
    )
    return b.decoder(
        cfg,
        GLM2,
        d,
        Block(attention + swiglu, norms),
        (b.embedding("transformer.embedding.word_embeddings.weight", vocab, hidden),),
        final,
        norm_kind=kind,
        max_position_embeddings=cfg.int("seq_length", 2048),
        rope_theta=10000.0 * cfg.float("rope_ratio", 1.0),
        rope_scaling=None,
        tie_word_embeddings=False,
        native_transformers=False,
        lm_head=b.lm_head(vocab, hidden, name="transformer.output_layer"),
    )
