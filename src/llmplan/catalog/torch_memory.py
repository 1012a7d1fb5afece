"""The device memory total torch (and so vLLM) sees: `torch.cuda.mem_get_info()[1]`, from `torch_memory.json`.

For an accelerator without a recorded figure the total is the nvidia-smi total minus the smallest gap recorded
for another accelerator (the driver's reservation is a few hundred MiB on every data-centre GPU), and
`TorchTotal.measured` is False so that callers can say it is an estimate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from llmplan.specs.hardware import Accelerator
from llmplan.units import GIB


@dataclass(frozen=True, slots=True)
class TorchTotal:
    """Bytes torch reports as the device's total, and where the figure comes from."""

    bytes: int
    source: str
    measured: bool


@cache
def _entries() -> dict[str, tuple[int, str]]:
    data = json.loads(resources.files("llmplan.catalog").joinpath("torch_memory.json").read_text("utf-8"))
    return {k: (round(v["gib"] * GIB), v["source"]) for k, v in data["entries"].items()}


def torch_total(acc: Accelerator, nvidia_smi_totals: dict[str, int] | None = None) -> TorchTotal:
    """torch's total for `acc` (module docstring). `nvidia_smi_totals` maps the recorded ids to their
    nvidia-smi totals, needed only for the fallback gap (the catalog's accelerators by default)."""
    entries = _entries()
    if acc.id in entries:
        value, source = entries[acc.id]
        return TorchTotal(value, source, True)
    if nvidia_smi_totals is None:
        from llmplan import catalog

        nvidia_smi_totals = {a.id: a.memory_bytes for a in catalog.accelerators() if a.id in entries}
    gaps = [nvidia_smi_totals[k] - v for k, (v, _) in entries.items() if k in nvidia_smi_totals]
    gap = min(gaps) if gaps else 0
    return TorchTotal(
        acc.memory_bytes - gap,
        f"estimated: nvidia-smi total − {gap / 2**20:,.0f} MiB (smallest driver reservation recorded in "
        "catalog/torch_memory.json)",
        False,
    )
