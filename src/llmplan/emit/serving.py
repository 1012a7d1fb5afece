"""A serving plan as the launch-config writers see it: every engine setting the serving estimate used, resolved.

`ServePlan.of` takes what `llmplan serve` built — the job (weights, KV dtype, tp / pp), the engine and its
defaults with the user's overrides (`llmplan.estimate.serving.resolved` over `llmplan.specs.engines`, the one
definition of each default) — so that a writer (`llmplan.emit.vllm`, `llmplan.emit.sglang`) reads the very values
the estimate assumed and writes them all explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.emit import EmitError
from llmplan.specs.engines import EngineDefaults, ServingEngine
from llmplan.specs.inference import InferenceJob, KvDtype, QuantFormat


@dataclass(frozen=True, kw_only=True, slots=True)
class ServePlan:
    """The serving settings of one replica (tp · pp GPUs)."""

    model: str
    """What the engine loads: the catalog entry's hub id, else the reference the user gave."""
    engine: EngineDefaults
    """The engine's settings as the estimate resolved them (defaults + overrides)."""
    quant: QuantFormat
    compute_dtype: QuantFormat
    """The activation dtype (`InferenceJob.activation_dtype`)."""
    kv_dtype: KvDtype
    context: int
    """Tokens per request at most: the engine's maximum model length."""
    tp: int
    pp: int
    ep: int
    prefix_caching: bool
    """On when the workload has prefix-cache hits (`--prefix-hit-rate` > 0), else off (the estimate has none)."""
    spec_tokens: int
    summary: str
    """The plan and its estimate in one line, for the config's comment header."""

    @classmethod
    def of(
        cls,
        *,
        model: str,
        engine: EngineDefaults,
        job: InferenceJob,
        context: int,
        ep: int,
        prefix_hit_rate: float,
        spec_tokens: int,
        summary: str,
    ) -> ServePlan:
        return cls(
            model=model,
            engine=engine,
            quant=job.quant,
            compute_dtype=job.activation_dtype,
            kv_dtype=job.kv_dtype,
            context=context,
            tp=job.tp,
            pp=job.pp,
            ep=ep,
            prefix_caching=prefix_hit_rate > 0,
            spec_tokens=spec_tokens,
            summary=summary,
        )

    def setting(self, name: str) -> int | float | bool:
        """The resolved value of one engine setting (`EngineDefaults` field name)."""
        return getattr(self.engine, name).value  # type: ignore[no-any-return]


def check_engine(target: str, engine: ServingEngine, plan: ServePlan) -> None:
    """EmitError when the plan was estimated with another engine's scheduling defaults, or uses speculative
    decoding (its draft model is the user's to name)."""
    if plan.engine.engine is not engine:
        raise EmitError(
            target,
            "--engine",
            f"the plan is {plan.engine.engine.value}'s (allowed: --engine {engine.value}, or leave it out)",
        )
    if plan.spec_tokens:
        raise EmitError(
            target,
            "--spec-tokens",
            f"{plan.spec_tokens}: speculative decoding needs a draft model the plan does not name (allowed: 0)",
        )


def yaml_text(header: str, values: dict[str, int | float | bool | str]) -> str:
    """A flat YAML mapping of scalars under `#` comment lines (YAML 1.1 booleans as true / false)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in values.items():
        shown = ("true" if value else "false") if isinstance(value, bool) else value
        lines.append(f"{key}: {shown}")
    return "\n".join(lines) + "\n"


def cli_flags(values: dict[str, int | float | bool | str], *, negate: str = "--no-") -> list[str]:
    """`--key-name value` pairs; booleans as `--flag` / `{negate}flag` (argparse BooleanOptionalAction)."""
    out: list[str] = []
    for key, value in values.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            out.append(f"--{flag}" if value else f"{negate}{flag}")
        else:
            out += [f"--{flag}", str(value)]
    return out
