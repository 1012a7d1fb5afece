"""`--plot FILE.svg|png` on train / serve / plan: the SVG parses as XML and carries every series of the chart
data, output is deterministic, PNG (with the plot extra) is a PNG, and bad paths exit 2 naming --plot."""

from __future__ import annotations

import builtins
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from llmplan import catalog, charts
from llmplan.charts import svg
from llmplan.cli import main
from llmplan.loading import load_model
from llmplan.specs.hardware import Cluster
from llmplan.specs.training import Layout, TrainingJob, ZeroStage
from llmplan.units import GIB

NS = "{http://www.w3.org/2000/svg}"
TRAIN = ["train", "llama-3.1-8b", "--zero", "3", "--gpus", "8"]
SERVE = ["serve", "llama-3.1-8b", "--gpu", "h100", "--context", "8192", "--concurrency", "8"]
PLAN = ["plan", "llama-3.2-1b", "--gpu", "h100,a100-sxm-80gb", "--gpus", "8", "--tp", "1", "--pp", "1",
        "--tokens", "10B", "--no-offload", "--top", "10"]  # fmt: skip


def _texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{NS}svg"
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")] + [
        "".join(t.itertext()) for t in root.iter(f"{NS}title")
    ]


def _labels(out: charts.Charts) -> set[str]:
    """Every series name the chart data has (segments, lines) and its chart titles."""
    names = {c.title[:95] for c in out.charts}
    for c in out.charts:
        if c.kind == "stacked":
            names |= {s.name for b in c.bars for s in b.segments if s.value > 0}
        elif c.kind == "line":
            names |= {line.name for line in c.lines}
        else:
            names |= {p.label for p in c.points}
    return names


@pytest.fixture(scope="module")
def train_charts():
    spec = load_model("llama-3.1-8b")
    cluster = Cluster(accelerator=catalog.accelerator("h100-sxm-80gb"), gpus_per_node=8, nodes=1)
    return charts.training_charts(spec, TrainingJob(), Layout(dp=8, zero=ZeroStage(3)), cluster)


@pytest.mark.parametrize("args", [TRAIN, SERVE, PLAN], ids=["train", "serve", "plan"])
def test_plot_writes_an_svg_with_every_series(args, tmp_path, capsys) -> None:
    path = tmp_path / "sub" / "charts.svg"
    assert main([*args, "--plot", str(path)]) == 0, capsys.readouterr().err
    texts = _texts(path)
    assert any(t.startswith(f"llmplan {args[0]}:") for t in texts)
    joined = "\n".join(texts)
    assert "capacity (OOM)" in joined
    if args[0] == "train":
        for name in ("weights", "optimizer_states", "activations", "device", "compute_s", "largest fitting"):
            assert name in joined
    elif args[0] == "serve":
        assert all(name in joined for name in ("kv_cache", "ttft", "tpot", "largest fitting"))
    else:
        assert "Pareto front" in joined and "hardware options" in joined


def test_svg_carries_the_chart_data(train_charts, tmp_path) -> None:
    path = tmp_path / "t.svg"
    path.write_text(svg.render(train_charts), encoding="utf-8")
    texts = set(_texts(path))
    missing = {name for name in _labels(train_charts) if not any(name in t for t in texts)}
    assert not missing
    peak = train_charts.get("memory").bars[-1]
    assert f"{peak.total / GIB:.3g}" in "\n".join(texts)


def test_svg_is_deterministic(train_charts) -> None:
    assert svg.render(train_charts) == svg.render(train_charts.model_copy(deep=True))


def test_nice_ticks_and_scale() -> None:
    assert svg.nice_ticks(79.6) == (0, 20, 40, 60, 80)
    assert svg.nice_ticks(6.18, 6.14)[0] <= 6.14 and svg.nice_ticks(6.18, 6.14)[-1] >= 6.18
    assert svg.scale(charts.series.Unit.SECONDS, 0.259) == (1e-3, "ms")
    assert svg.scale(charts.series.Unit.SECONDS, 3 * 86400) == (86400.0, "days")


def test_plot_png(tmp_path, capsys) -> None:
    pytest.importorskip("resvg_py")
    path = tmp_path / "charts.png"
    assert main([*TRAIN, "--plot", str(path)]) == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_resvg_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch) -> None:
    real = builtins.__import__

    def no_resvg(name, *args, **kwargs):
        if name == "resvg_py":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_resvg)
    assert main([*TRAIN, "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot" in err and "llmplan[plot]" in err and ".svg" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args", [TRAIN, SERVE, PLAN], ids=["train", "serve", "plan"])
@pytest.mark.parametrize("name,says", [("x.jpg", "'.jpg'"), ("noext", "no extension")])
def test_bad_extension_exits_2(args, name, says, tmp_path, capsys) -> None:
    assert main([*args, "--plot", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plot" in err and says in err and ".svg, .png" in err


def test_unwritable_paths_exit_2(tmp_path, capsys) -> None:
    folder = tmp_path / "dir.svg"
    folder.mkdir()
    assert main([*TRAIN, "--plot", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*TRAIN, "--plot", str(blocker / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "--plot" in err and "cannot create the folder" in err and "Traceback" not in err


def test_plot_with_emit_and_when_nothing_fits(tmp_path, capsys) -> None:
    emitted = tmp_path / "emit.svg"
    args = [*TRAIN, "--emit", "deepspeed", "--out", str(tmp_path / "ds.json"), "--plot", str(emitted)]
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "ds.json").exists() and "llmplan train:" in "".join(_texts(emitted))
    too_big = tmp_path / "big.svg"
    assert main(["train", "llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--plot", str(too_big)]) == 0
    joined = "\n".join(_texts(too_big))
    assert "largest fitting" not in joined and "capacity (OOM)" in joined
