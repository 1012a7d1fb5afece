"""The GPU measurement campaign: one command that measures every case of benchmarks/device_cases.py on a CUDA
GPU and writes one JSON file per case into the folder it is given, as it goes.

    python benchmarks/device_campaign.py --out DIR [--budget-s 420] [--only SUBSTRING ...]
    python benchmarks/device_campaign.py --out DIR --dry-run      # no CUDA: every case built and traced

Cases (device_cases.py): 26 training steps with `llmplan measure` (full bf16-mixed with AdamW foreach and
fused, pure bf16 with bitsandbytes 8-bit AdamW, LoRA r16 all-linear, QLoRA NF4, recompute none / full, eager vs
sdpa, 1024 and 4096 tokens, Qwen2.5-0.5B to Llama-3.1-8B with random weights); prefill + decode at batch 1, 8,
64 with a KV cache; calibration kernels (bf16 / fp8 GEMMs, SDPA forward + backward, HBM copy, AdamW step).
Each file holds the case's settings, the equivalent `llmplan` command, the environment (GPU, driver, CUDA,
torch / transformers / peft / bitsandbytes versions, date), the analytic estimate, the trace of the same case
(copied from the committed dry run in benchmarks/results/device-plan/, when present) and the measurement.

Resumable: a case whose JSON exists in DIR is skipped, so a rerun finishes what a cut-off run left. An OOM or
any other failure of one case is recorded in its file (status "oom" / "error") and the campaign goes on. No case
starts once `--budget-s` seconds have passed; the rest are listed and a rerun resumes them.

On the lent H200 machine (Python 3.12, torch 2.11, transformers, peft, accelerate preinstalled; no network),
bitsandbytes (8-bit AdamW, QLoRA's Linear4bit) travels as a wheel. Once, here, in the repository root, run
`echo /.whl/ >> .git/info/exclude` and WHEEL_COMMAND:

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2

then one device run (the `run` tool, `carry: [".whl"]`, timeout_s 600) of DEVICE_COMMAND:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 && mkdir -p /tmp/device && (cp -n benchmarks/results/device/*.json /tmp/device/ 2>/dev/null; timeout 540 python3 benchmarks/device_campaign.py --out /tmp/device --budget-s 420 2>&1 | tee $OUT/campaign.log; tar czf $OUT/device.tgz -C /tmp device)

It writes into /tmp/device, not $OUT, because the device returns at most 8 files; seeding it from the committed
results makes a run on a fresh machine resume too, and `timeout 540` leaves the tarball time inside the call's
600 s. Unpack device.tgz into benchmarks/results/ and run benchmarks/device_report.py to regenerate
docs/accuracy-device.md.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import device_cases as dc  # noqa: E402
import device_kernels  # noqa: E402

PLAN = ROOT / "benchmarks" / "results" / "device-plan"
"""The committed dry run: the trace of every case, copied into the device results."""
DEFAULT_BUDGET_S = 420.0
WHEEL_COMMAND = next(line.strip() for line in __doc__.splitlines() if "pip download" in line)
"""The exact `pip download` of the bitsandbytes wheel (the module docstring's)."""
DEVICE_COMMAND = next(
    line.strip() for line in __doc__.splitlines() if "device_campaign.py --out /tmp" in line
)
"""The exact command of the device run (the module docstring's)."""


def select(only: list[str] | None) -> list[Any]:
    """The cases whose id contains one of `only` (all of them without it), kernels first (short, and they warm
    the CUDA context and cuBLAS up), then training, then inference."""
    cases = [*dc.KERNEL_CASES, *dc.TRAIN_CASES, *dc.INFER_CASES]
    return [c for c in cases if not only or any(s in c.id for s in only)]


def settings(case: Any) -> dict[str, Any]:
    if isinstance(case, dc.TrainCase):
        return {"model": case.model, **_plain(asdict(case.job))}
    if isinstance(case, dc.InferCase):
        return {"model": case.model, "batch": case.batch, "prompt": case.prompt, "decode": case.decode}
    return {"op": case.op, **case.params}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def environment(torch: Any, *, dry: bool) -> dict[str, Any]:
    """What ran the campaign: versions, date, and on a GPU its name, capability, memory, driver and CUDA."""
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "dry_run": dry,
        "llmplan_commit": _git_commit(),
        "pytorch_cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
    }
    for name in ("transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # absent, or broken on this machine: recorded as such
            env[name] = None
    if dry:
        env["device"] = "cpu (fake tensors)"
        return env
    props = torch.cuda.get_device_properties(0)
    env.update(
        gpu=props.name,
        compute_capability=f"{props.major}.{props.minor}",
        gpu_total_bytes=int(props.total_memory),
        cuda=torch.version.cuda,
        nvidia_smi=_nvidia_smi("name,driver_version,memory.total,memory.used"),
    )
    return env


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _nvidia_smi(fields: str) -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class NvmlPeak:
    """The highest 'memory used' NVML reports (the nvidia-smi figure) while a case runs, sampled every 5 ms;
    None when nvidia-ml-py is absent. It spans the whole case, the model's build included."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._read = lambda h=pynvml.nvmlDeviceGetHandleByIndex(0): int(
                pynvml.nvmlDeviceGetMemoryInfo(h).used
            )
        except Exception:  # no NVML on this machine: the counter is left out
            self._read = None

    def __enter__(self) -> NvmlPeak:
        if self._read is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            used = self._read()
            self.peak = used if self.peak is None else max(self.peak, used)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._read is not None:
            self._thread.join()


def measure_case(case: Any, torch: Any, gpu: Any) -> dict[str, Any]:
    """The case run on the GPU: `llmplan measure` for training and inference, device_kernels for kernels."""
    if isinstance(case, dc.KernelCase):
        result = device_kernels.run(case, torch, torch.device("cuda"))
        result.update(device_kernels.rates(result, gpu.peak_flops_per_s, gpu.memory_bandwidth_bytes_per_s))
        return result
    from llmplan.loading import load_model
    from llmplan.trace import inference_run
    from llmplan.trace.measure import measure

    spec = load_model(case.model)
    if isinstance(case, dc.TrainCase):
        work: Any = case.job
    else:
        work = inference_run(batch_size=case.batch, prompt_len=case.prompt, decode_steps=case.decode)
    with NvmlPeak() as nvml:
        result = measure(spec, work)
    out = {
        "peak_allocated_bytes": result.peak_allocated_bytes,
        "peak_reserved_bytes": result.peak_reserved_bytes,
        "device_used_bytes": result.device_used_bytes,
        "device_total_bytes": result.device_total_bytes,
        "nvml_used_max_bytes": nvml.peak,
        "device_name": result.device_name,
        "notes": list(result.notes),
    }
    if isinstance(case, dc.TrainCase):
        out["step_time_s"] = result.step_time_s
    else:
        out["ttft_s"] = result.step_time_s
        out["tpot_s"] = result.decode_time_per_token_s
    return out


def trace_case(case: Any, torch: Any) -> dict[str, Any]:
    """The dry run of a case: the trace engine on fake tensors (kernels: built and run once on fake tensors)."""
    if isinstance(case, dc.KernelCase):
        return device_kernels.run(case, torch, None, dry=True)
    from llmplan.loading import load_model
    from llmplan.trace import by_category, inference_run, trace_inference, trace_training

    spec = load_model(case.model)
    if isinstance(case, dc.TrainCase):
        result = trace_training(spec, case.job)
    else:
        run = inference_run(batch_size=case.batch, prompt_len=case.prompt, decode_steps=case.decode)
        result = trace_inference(spec, run)
    return {
        "peak_allocated_bytes": result.total,
        "peak": by_category(result.peak),
        "peak_phase": result.peak_phase,
        "peak_step": result.peak_step,
        "timeline": [[t.phase, t.step, t.peak_bytes, t.end_bytes] for t in result.timeline],
        "composed": result.composed,
        "traced_layers": list(result.traced_layers),
        "trainable_params": result.trainable_params,
        "wall_s": round(result.wall_s, 2),
        "notes": list(result.notes),
    }


def run_case(case: Any, torch: Any, env: dict[str, Any], *, dry: bool, gpu_id: str) -> dict[str, Any]:
    """One case's record; a failure is recorded (status oom / error / untraceable), never raised."""
    from llmplan import catalog
    from llmplan.errors import LlmplanError

    record: dict[str, Any] = {
        "case": case.id,
        "kind": case.kind,
        "settings": settings(case),
        "environment": env,
    }
    if not isinstance(case, dc.KernelCase):
        record["command"] = case.command()
        record["analytic"] = dc.analytic(case, gpu_id)
    started = time.perf_counter()
    try:
        if dry:
            record["trace" if not isinstance(case, dc.KernelCase) else "built"] = trace_case(case, torch)
            record["status"] = "dry-run"
        else:
            record["trace"] = _planned_trace(case.id)
            record["measured"] = measure_case(case, torch, catalog.accelerator(gpu_id))
            record["status"] = "ok"
    except LlmplanError as exc:
        record["status"] = "untraceable" if dry else "error"
        record["error"] = str(exc)
    except Exception as exc:  # one case's failure (OOM above all) is its result; the campaign goes on
        oom = type(exc).__name__ == "OutOfMemoryError"
        record["status"] = "oom" if oom else "error"
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if not dry and torch.cuda.is_available():
            record["measured_at_failure"] = {"peak_allocated_bytes": int(torch.cuda.max_memory_allocated())}
    record["wall_s"] = round(time.perf_counter() - started, 3)
    gc.collect()
    if not dry and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return record


def _planned_trace(case_id: str) -> dict[str, Any] | None:
    path = PLAN / f"{case_id}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("trace")


def write(path: Path, record: dict[str, Any]) -> None:
    """Written whole or not at all (a run cut off mid-write leaves no half file for the resume to trust)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder of the per-case JSON files.")
    parser.add_argument(
        "--dry-run", action="store_true", help="No CUDA: build and trace every case on fake tensors."
    )
    parser.add_argument(
        "--only", action="append", help="Run only the cases whose id contains this (repeatable)."
    )
    parser.add_argument(
        "--budget-s", type=float, default=DEFAULT_BUDGET_S, help="Start no case after this many s."
    )
    parser.add_argument("--gpu", default=dc.GPU, help="Catalog accelerator of the analytic estimates.")
    parser.add_argument("--list", action="store_true", help="Print the case ids and commands, run nothing.")
    args = parser.parse_args(argv)
    cases = select(args.only)
    if args.list:
        for c in cases:
            print(c.id, "|", c.command() if hasattr(c, "command") else f"{c.op} {c.params}")
        return 0
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA GPU is visible to PyTorch; use --dry-run to build and trace the cases on the CPU")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(torch, dry=args.dry_run)
    started = time.perf_counter()
    done = skipped = 0
    left: list[str] = []
    for case in cases:
        path = args.out / f"{case.id}.json"
        if path.exists():
            skipped += 1
            continue
        if time.perf_counter() - started > args.budget_s:
            left.append(case.id)
            continue
        record = run_case(case, torch, env, dry=args.dry_run, gpu_id=args.gpu)
        write(path, record)
        done += 1
        print(f"{record['status']:>11} {record['wall_s']:7.2f} s  {case.id}", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"{done} cases run, {skipped} already present (resumed), {len(left)} left by the budget, {elapsed:.0f} s"
    )
    if left:
        print("rerun the same command to resume: " + ", ".join(left))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
