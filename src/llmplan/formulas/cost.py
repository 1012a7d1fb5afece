"""Cost of a training run: GPU-hours, dollars and energy.

    gpu_hours = GPUs · time_to_train_s / 3600
    usd       = gpu_hours · price per GPU-hour (the accelerator catalog's price with its source, or the user's)
    kWh       = gpu_hours · board power (W) / 1000

Energy counts the GPUs' board power at their TDP (an upper bound for a GPU kept busy; training runs draw 70–100 %
of it), without the host, the network or the data centre's PUE.
"""

from __future__ import annotations

import math

from llmplan.breakdown import Term, Unit
from llmplan.errors import SpecError

MAX_PRICE_USD_PER_GPU_HOUR = 1000.0
"""Prices above this are refused as a typo (the dearest accelerator rents for well under $100 per GPU-hour)."""
_SOURCE = "GPU-hours × price; energy at the catalog TDP (board power only)"


def check_price(price: float) -> float:
    """The price, or SpecError naming the allowed range."""
    if isinstance(price, bool) or not (math.isfinite(price) and 0 < price <= MAX_PRICE_USD_PER_GPU_HOUR):
        raise SpecError(
            "price", f"{price!r} USD per GPU-hour (allowed: 0 < price <= {MAX_PRICE_USD_PER_GPU_HOUR:g})"
        )
    return float(price)


def training_cost(
    *,
    time_to_train_s: float,
    gpus: int,
    price_usd_per_gpu_hour: float | None,
    price_source: str,
    tdp_w: float | None,
) -> tuple[Term, ...]:
    """`cost.gpu_hours`, `cost.usd` (when a price is known) and `cost.energy_kwh` (when the TDP is known)."""
    hours = gpus * time_to_train_s / 3600
    out = [
        Term(
            "cost.gpu_hours",
            hours,
            Unit.GPU_HOURS,
            f"{gpus} GPUs × {time_to_train_s:,.0f} s / 3600 s",
            _SOURCE,
        )
    ]
    if price_usd_per_gpu_hour is not None:
        price = check_price(price_usd_per_gpu_hour)
        out.append(
            Term("cost.usd", hours * price, Unit.USD, f"{hours:,.1f} GPU-h × ${price:g}/GPU-h", price_source)
        )
    if tdp_w is not None:
        out.append(
            Term(
                "cost.energy_kwh",
                hours * tdp_w / 1000,
                Unit.KWH,
                f"{hours:,.1f} GPU-h × {tdp_w:g} W / 1000",
                "board power at TDP (accelerator catalog); no host, network or PUE",
            )
        )
    return tuple(out)
