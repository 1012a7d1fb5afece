"""Every subcommand with a corrupted input under `python -X dev` (all warnings shown, faulthandler on): exit 2,
one `error:` line per problem, no traceback, no warning. One interpreter runs them all (in-process `main`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CORRUPT = {
    "truncated.json": '{"model_type": "llama", "hidden_size": 40',
    "list_type.json": json.dumps({"model_type": ["llama"], "hidden_size": 4096}),
    "huge_int.json": '{"model_type": "llama", "vocab_size": ' + "9" * 5000 + "}",
    "deep.json": '{"model_type": "llama", "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "nan.json": '{"model_type": "llama", "hidden_size": NaN}',
    "layers.json": json.dumps(
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
         "num_hidden_layers": 10**9, "vocab_size": 100, "max_position_embeddings": 128}
    ),
}  # fmt: skip

SCRIPT = """
import json, sys
from llmplan.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps(codes))
"""


def test_every_subcommand_with_corrupted_input_under_dev_mode(tmp_path: Path) -> None:
    for name, text in CORRUPT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    files = [str(tmp_path / name) for name in CORRUPT]
    runs = [[command, f] for command in ("params", "train", "serve") for f in files]
    runs += [
        ["trace", files[0]],
        ["measure", files[1]],
        ["formats", "nan"],
        ["formats", "1", "--absmax", "0"],
        ["models", "--min-b", "nan"],
        ["gpus", "--vendor"],
        ["clusters", "--gpu", "nope"],
        ["validate", "--write", str(tmp_path)],
        ["train", str(tmp_path / "missing.json")],
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(runs), list(zip(runs, codes, strict=True))
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == len(runs) and all(line.startswith("error: ") for line in lines), proc.stderr[-3000:]
