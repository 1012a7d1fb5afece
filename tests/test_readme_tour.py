"""The README's tour runs as written right after its setup line: its first line puts `llmplan` on the PATH,
and every command but the slow trace / validate exits 0 (run in-process)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from llmplan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SLOW = ("trace", "validate")


def tour_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("## A short tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_readme_starts_with_the_two_commands():
    first = README.read_text(encoding="utf-8").split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert first[0].startswith("bash scripts/setup.sh && .venv/bin/llmplan ")
    assert first[1] == "bash scripts/test.sh"


def test_tour_first_activates_the_venv():
    assert tour_commands()[0].startswith("source .venv/bin/activate")


@pytest.mark.parametrize("command", [c for c in tour_commands() if c.startswith("llmplan ")])
def test_tour_command_runs(command, capsys):
    argv = shlex.split(command, comments=True)[1:]
    if argv[0] in SLOW:
        assert main([argv[0], "--help"]) == 0
        return
    assert main(argv) == 0, capsys.readouterr().err
