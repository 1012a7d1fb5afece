"""llmplan: will this model fit, where does the memory go, how long and at what cost — checked against the
real PyTorch model traced on fake tensors.

The core (specs, catalog, formulas, estimate, plan, cli) imports without torch.
"""

from __future__ import annotations

from llmplan.formulas.params import ParamBreakdown, count_params
from llmplan.loading import load_model
from llmplan.specs.model import ModelSpec

__version__ = "0.1.0"

__all__ = ["ModelSpec", "ParamBreakdown", "count_params", "load_model", "__version__"]
