"""Unit constants. Bytes are ints; display uses GiB (2**30) and says so; parameter counts use 10**9 (B)."""

from __future__ import annotations

KIB = 2**10
MIB = 2**20
GIB = 2**30
GB = 10**9
TB = 10**12
BILLION = 10**9


def gib(n_bytes: float) -> str:
    """Bytes shown in GiB (2**30), two decimals."""
    return f"{n_bytes / GIB:,.2f}"
