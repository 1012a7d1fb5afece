"""`llmplan plan` against nanotron's published best configurations (shared/data/throughput.jsonl).

Each row is the best (dp, tp, pp, ZeRO, micro-batch, grad_accum) nanotron's Ultra-scale playbook sweep found
for one model size on one GPU count (H100 80GB, seq 4096, vocab 131072, global batch 256 sequences). The models
are nanotron's `scripts/scaling_benchmarks.py` shapes (layers, hidden, heads, intermediate; MHA; embeddings
tied below an intermediate size of 10,000). The search space is the one the sweep covered: dp x tp x pp,
ZeRO 0 / 1 (Megatron-style stack), micro-batch and grad_accum at the row's global batch, 1F1B, no recompute,
no context parallel, no offload.

Reported: the share of rows whose published best is in llmplan's top 5 (same dp, tp, pp, ZeRO stage and
micro-batch), and whether llmplan's predicted step for its own top layout is <= its prediction for the
published best (estimated directly when the published layout is outside the searched space, tp 16).
Writes benchmarks/results/plan_nanotron.json and docs/plan_nanotron.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.errors import LlmplanError
from llmplan.estimate.time import estimate_time
from llmplan.estimate.training import estimate_training
from llmplan.plan.training import Constraints, search_training
from llmplan.specs.training import (
    AttentionImpl,
    Layout,
    PipelineSchedule,
    Recompute,
    Stack,
    TrainingJob,
    ZeroStage,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/throughput.jsonl")
if not DATA.exists():
    DATA = ROOT.parent / "shared" / "data" / "throughput.jsonl"
SHAPES = {  # params_b -> (layers, hidden, heads, intermediate), nanotron scripts/scaling_benchmarks.py
    1.34: (16, 2048, 32, 8192),
    3.57: (28, 3072, 32, 8192),
    8.86: (32, 4096, 32, 14336),
    80.0: (80, 8192, 64, 28672),
}
TOP = 5


def _model(params_b: float):
    layers, hidden, heads, inter = SHAPES[params_b]
    config = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "vocab_size": 131072, "max_position_embeddings": 4096,
        "tie_word_embeddings": inter < 10_000, "rms_norm_eps": 1e-5, "hidden_act": "silu", "rope_theta": 10000.0,
    }  # fmt: skip
    return parse_config(config, f"nanotron scaling_benchmarks.py {params_b}B")


def _same(r, row) -> bool:
    lay, job = r.layout, r.job
    return (lay.dp, lay.tp, lay.pp, int(lay.zero), job.micro_batch_size) == (
        row["dp"], row["tp"], row["pp"], int(row["zero_or_fsdp"][-1]), row["micro_batch"]
    )  # fmt: skip


def main() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "nanotron" in r.get("framework", "")]
    out = []
    for row in rows:
        model = _model(row["params_b"])
        cluster = catalog.cluster_for_gpus("dgx-h100", row["n_gpus"])
        job = TrainingJob(seq_len=row["seq_len"], attention=AttentionImpl.FLASH)
        tokens = row["global_batch"] * row["seq_len"]
        plan = search_training(
            model, job, cluster, global_batch_tokens=tokens, top=None,
            constraints=Constraints(cp=1, shardings=("megatron zero 0", "megatron zero 1"), offload=False,
                                    schedules=(PipelineSchedule.ONE_F_ONE_B,), recomputes=(Recompute.NONE,)),
        )  # fmt: skip
        rank = next((i for i, r in enumerate(plan.layouts, 1) if _same(r, row)), None)
        ga = row["global_batch"] // (row["dp"] * row["micro_batch"])
        pub_job = dataclasses.replace(job, micro_batch_size=row["micro_batch"], grad_accum_steps=ga)
        pub_lay = Layout(
            dp=row["dp"], tp=row["tp"], pp=row["pp"], zero=ZeroStage(int(row["zero_or_fsdp"][-1])),
            stack=Stack.MEGATRON, sequence_parallel=row["tp"] > 1,
        )  # fmt: skip
        try:
            pub_step = estimate_time(model, pub_job, pub_lay, cluster).step_s
            pub_fits = estimate_training(model, pub_job, pub_lay, cluster).fits
        except LlmplanError as exc:
            pub_step, pub_fits = None, f"not estimable: {exc}"
        top = plan.layouts[0] if plan.layouts else None
        out.append({
            "id": row["id"], "params_b": row["params_b"], "gpus": row["n_gpus"],
            "published": f"dp{row['dp']} tp{row['tp']} pp{row['pp']} {row['zero_or_fsdp']} mbs{row['micro_batch']} ga{ga}",
            "published_mfu_pct": row["value"], "published_rank": rank, "in_top5": rank is not None and rank <= TOP,
            "published_predicted_step_s": None if pub_step is None else round(pub_step, 4),
            "published_fits_in_llmplan": pub_fits,
            "llmplan_top": None if top is None else (
                f"dp{top.layout.dp} tp{top.layout.tp} pp{top.layout.pp} zero {int(top.layout.zero)} "
                f"mbs{top.job.micro_batch_size} ga{top.job.grad_accum_steps}"),
            "llmplan_top_step_s": None if top is None else round(top.step_s, 4),
            "llmplan_top_mfu_pct": None if top is None else round(100 * top.time.mfu, 2),
            "top_no_worse": None if top is None or pub_step is None else top.step_s <= pub_step * (1 + 1e-9),
            "searched": plan.counts.searched, "feasible": plan.counts.feasible,
        })  # fmt: skip
        print(json.dumps(out[-1]), flush=True)
    share = sum(r["in_top5"] for r in out) / len(out)
    no_worse = [r["top_no_worse"] for r in out if r["top_no_worse"] is not None]
    summary = {
        "rows": len(out), "in_top5_share": round(share, 3),
        "top_no_worse_share": round(sum(no_worse) / len(no_worse), 3) if no_worse else None,
        "rows_outside_space": sum(1 for r in out if r["published_rank"] is None),
    }  # fmt: skip
    (ROOT / "benchmarks" / "results" / "plan_nanotron.json").write_text(
        json.dumps({"summary": summary, "rows": out}, indent=2) + "\n"
    )
    lines = [
        "# `llmplan plan` vs nanotron's best configurations",
        "",
        "Generated by `benchmarks/bench_plan_nanotron.py` (see its docstring for the search space and the models).",
        f"Rows: {summary['rows']}; published best in llmplan's top {TOP}: **{share:.0%}**; llmplan's own top "
        f"predicted no slower than its prediction for the published best: **{summary['top_no_worse_share']:.0%}**.",
        "",
        "| row | GPUs | published best (MFU %) | rank in llmplan | llmplan top | top step s | published step s (fits) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out:
        lines.append(
            f"| {r['params_b']}B | {r['gpus']} | {r['published']} ({r['published_mfu_pct']}) | "
            f"{r['published_rank'] or 'not feasible / outside'} | {r['llmplan_top']} | {r['llmplan_top_step_s']} | "
            f"{r['published_predicted_step_s']} ({r['published_fits_in_llmplan']}) |"
        )
    (ROOT / "docs" / "plan_nanotron.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
