"""The JSON that every `--json` prints, as pydantic models: versioned (`schema_version`), strict (unknown keys
rejected, never NaN or Infinity) and documented in docs/json.md.

Each command's output is an `Envelope` subclass built from the typed results (dataclasses from specs/ and
estimate/ are validated as they are); memory and time breakdowns are the estimate's own `Term` records
(`TermOut`). A float that is not finite (an fp16 overflow in `llmplan formats`) is written as the string
"inf", "-inf" or "nan". `dump` writes the JSON text with `allow_nan=False`.
"""

from llmplan.schema.commands import (
    ClustersOut,
    EmitOut,
    EncodingOut,
    FormatsOut,
    GpusOut,
    MeasureOut,
    ModelsOut,
    ParamsOut,
    TraceOut,
    ValidateOut,
)
from llmplan.schema.plan import PlanBodyOut, PlanLayoutOut, PlanOut
from llmplan.schema.records import (
    SCHEMA_VERSION,
    BreakdownOut,
    Envelope,
    NonFinite,
    Number,
    Out,
    TermOut,
    dump,
    plain,
)
from llmplan.schema.serve import ServeLoadOut, ServeOut
from llmplan.schema.train import ChangeOut, ErrorBandOut, PhaseOut, SuggestionOut, TrainOut

__all__ = [
    "BreakdownOut",
    "ChangeOut",
    "ClustersOut",
    "EmitOut",
    "EncodingOut",
    "Envelope",
    "FormatsOut",
    "GpusOut",
    "MeasureOut",
    "ModelsOut",
    "NonFinite",
    "Number",
    "Out",
    "ParamsOut",
    "PlanBodyOut",
    "PlanLayoutOut",
    "PlanOut",
    "PhaseOut",
    "SCHEMA_VERSION",
    "ServeLoadOut",
    "ServeOut",
    "ErrorBandOut",
    "SuggestionOut",
    "TermOut",
    "TraceOut",
    "TrainOut",
    "ValidateOut",
    "dump",
    "plain",
]
