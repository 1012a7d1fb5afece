"""Wall time of `llmplan params llama-2-7b` as a user runs it (a new process each time).

Acceptance (foundation issue, item 8): under 0.5 s wall on the 2-core development machine.
Writes benchmarks/results/cli_speed.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
TARGET_S = 0.5
OUT = Path(__file__).parent / "results" / "cli_speed.json"


def wall_s(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    script = Path(sys.executable).with_name("llmplan")
    command = [str(script) if script.exists() else sys.executable, *([] if script.exists() else ["-m", "llmplan"])]
    command += ["params", "llama-2-7b"]
    wall_s(command)  # warm the file cache
    times = sorted(wall_s(command) for _ in range(RUNS))
    result = {
        "command": "llmplan params llama-2-7b",
        "runs": RUNS,
        "median_s": round(statistics.median(times), 4),
        "max_s": round(times[-1], 4),
        "target_s": TARGET_S,
        "meets_target": statistics.median(times) < TARGET_S,
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
