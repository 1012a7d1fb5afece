"""Chart data and drawings: the charts of `llmplan train`, `serve` and `plan` (`--plot FILE.svg|png`) and of
the web page, computed only from the estimates' and the plan's own records.

Data (`charts.series` records, JSON-serialisable): one function per chart, each taking the typed inputs the
CLI builds (ModelSpec, TrainingJob / InferenceJob, Layout, Cluster) or the plan's result; `*_charts` returns all
of a command's charts as one `Charts`. Drawing: `charts.svg.render` (standalone SVG), `charts.svg.write`
(SVG, or PNG through the `plot` extra).
"""

from llmplan.charts.plan import hardware_scatter, layout_scatter, plan_charts
from llmplan.charts.series import (
    Bar,
    Chart,
    Charts,
    Line,
    LineChart,
    Point,
    ScatterChart,
    ScatterPoint,
    Segment,
    StackedChart,
)
from llmplan.charts.serving import (
    kv_cache_vs_concurrency,
    latency_vs_concurrency,
    serving_charts,
    serving_memory,
)
from llmplan.charts.training import (
    memory_stack,
    memory_vs_micro_batch,
    memory_vs_seq_len,
    step_time,
    training_charts,
)

__all__ = [
    "Bar",
    "Chart",
    "Charts",
    "Line",
    "LineChart",
    "Point",
    "ScatterChart",
    "ScatterPoint",
    "Segment",
    "StackedChart",
    "hardware_scatter",
    "kv_cache_vs_concurrency",
    "latency_vs_concurrency",
    "layout_scatter",
    "memory_stack",
    "memory_vs_micro_batch",
    "memory_vs_seq_len",
    "plan_charts",
    "serving_charts",
    "serving_memory",
    "step_time",
    "training_charts",
]
