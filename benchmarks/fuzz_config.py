"""Fuzzer over the config parser: mutated config.json texts through the whole user path
(`loading.parse_config_text` -> `adapters.parse_config` -> `loading.checked`, then a parameter count).

Each generated config starts from a catalog config and gets 1-4 mutations: a key deleted; a value replaced by
one of another type or an extreme (0, -1, 10**5000 digits, 1e30, NaN / Infinity tokens, strings, lists, deep
nesting, objects); `model_type` swapped or broken; `text_config` wrapping; the text itself truncated or
corrupted. Outcomes:
- ok: parsed, and the parameter count is finite and within `limits.PARAMS`;
- refused: an LlmplanError (one message naming the field) — what bad input must get;
- unexpected_shape: the adapter's safety net (ConfigShapeError) had to name the config: a field not typed yet;
- crash: any other exception (a bug); hang: one config over HANG_S (a bug).

Acceptance (issue 9): at least 100,000 configs, 0 crashes, 0 hangs. Writes benchmarks/results/fuzz_config.json.
Run: python benchmarks/fuzz_config.py [--n 100000] [--seed 9]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from llmplan import catalog, limits
from llmplan.adapters import ConfigShapeError, parse_config
from llmplan.errors import LlmplanError
from llmplan.formulas.params import count_params
from llmplan.loading import checked, parse_config_text

OUT = Path(__file__).parent / "results" / "fuzz_config.json"
HANG_S = 2.0
KEYS_EXTRA = ("num_experts_per_tok", "num_local_experts", "sliding_window", "layer_types", "rope_scaling",
              "head_dim", "num_key_value_heads", "tie_word_embeddings", "text_config", "mlp_only_layers",
              "sliding_window_pattern", "rope_parameters", "first_k_dense_replace", "moe_layer_freq")  # fmt: skip


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def extreme_value(rng: random.Random) -> object:
    """A value of a random type or an extreme size (raw JSON text marked by a RawJson wrapper)."""
    choice = rng.randrange(20)
    return [
        0, -1, 1, 2**31, 2**63, 10**30, 1e30, -1e30, 0.5, 1e-300, True, False, None, "", "4096", "x" * 1000,
        [], [1, 2, 3], {"a": 1}, RawJson(rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000,
                                                     "[" * 200 + "]" * 200, "-0", "1E+308"])),
    ][choice]  # fmt: skip


class RawJson(str):
    """JSON text inserted as it is (tokens json.dumps cannot produce)."""


def to_text(value: object) -> str:
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_text(v) for v in value) + "]"
    return json.dumps(value)


def mutate(config: dict, rng: random.Random, model_types: list[str]) -> str:
    data = dict(config)
    for _ in range(rng.randint(1, 4)):
        keys = list(data) + list(KEYS_EXTRA)
        key = rng.choice(keys)
        kind = rng.randrange(10)
        if kind == 0 and key in data:
            del data[key]
        elif kind == 1:
            data["model_type"] = rng.choice(model_types + ["gemma3", "", "LLAMA", 7, ["llama"], None])
        elif kind == 2 and isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
            data[key] = data[key] * rng.choice([0, -1, 2, 1000, 10**6, 10**9]) + rng.choice([0, 1, -1])
        elif kind == 3:
            data = {"model_type": "gemma3", "text_config": data}
        elif kind == 4:
            data[key] = {"type": rng.choice(["linear", "dynamic", "yarn", 3]), "factor": extreme_value(rng)}
        elif kind == 5:
            data[key] = [
                rng.choice(["sliding_attention", "full_attention", 1, None])
                for _ in range(rng.randint(0, 80))
            ]
        else:
            data[key] = extreme_value(rng)
    text = to_text(data)
    corruption = rng.randrange(40)
    if corruption == 0:
        text = text[: rng.randrange(len(text) + 1)]
    elif corruption == 1:
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(["}", "{", '"', ",", "\\", "\x00", "[" * 3000]) + text[i:]
    return text


def run_one(text: str) -> str:
    spec = checked(parse_config(parse_config_text(text, "fuzz.json"), "fuzz.json"))
    total = count_params(spec).total
    if not 0 < total <= limits.PARAMS.high:
        raise AssertionError(f"parameter count {total} outside the bound after parsing")
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bases = [e.config for e in catalog.model_entries()]
    model_types = sorted({str(c.get("model_type")) for c in bases})
    outcomes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {"crash": [], "hang": [], "unexpected_shape": []}
    slowest = 0.0
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    for _ in range(args.n):
        text = mutate(rng.choice(bases), rng, model_types)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
        try:
            outcome = run_one(text)
        except Hang:
            outcome = "hang"
        except ConfigShapeError as exc:
            outcome = "unexpected_shape"
            detail = str(exc)
        except LlmplanError:
            outcome = "refused"
        except Exception:
            outcome = "crash"
            detail = traceback.format_exc(limit=3)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - t0)
        outcomes[outcome] += 1
        if outcome in examples and len(examples[outcome]) < 5:
            shown = text if len(text) <= 4000 else text[:4000] + " ..."
            examples[outcome].append(shown + " -> " + (detail if outcome != "hang" else "hang")[:600])
    wall = time.perf_counter() - start
    result = {
        "configs": args.n,
        "seed": args.seed,
        "outcomes": dict(sorted(outcomes.items())),
        "crashes": outcomes["crash"],
        "hangs": outcomes["hang"],
        "unexpected_shape": outcomes["unexpected_shape"],
        "slowest_config_s": round(slowest, 4),
        "hang_threshold_s": HANG_S,
        "wall_s": round(wall, 1),
        "configs_per_s": round(args.n / wall),
        "meets_acceptance": args.n >= 100_000 and outcomes["crash"] == 0 and outcomes["hang"] == 0,
        "examples": examples,
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2))
    sys.exit(0 if result["meets_acceptance"] else 1)


if __name__ == "__main__":
    main()
