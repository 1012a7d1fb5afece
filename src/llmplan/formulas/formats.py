"""How one real number is stored in each number format LLMs use: bits, stored value, error, range.

Pure Python: exact rational arithmetic (`fractions.Fraction`), no numpy / torch.

Floating point (IEEE 754 style: sign, e exponent bits with bias 2^(e-1) - 1, m mantissa bits, subnormals):
    value = (-1)^s · 2^(E - bias) · (1 + M / 2^m)   (normal),   (-1)^s · 2^(1 - bias) · M / 2^m   (subnormal)
rounded to nearest, ties to even (what `torch.Tensor.to` and `struct.pack` do).
- fp32 e8m23, fp16 e5m10 (max 65504 — not 65506 as one seed says), bf16 e8m7 (same range as fp32);
- fp8 e4m3 ("e4m3fn", OCP FP8 spec / Micikevicius et al. 2022): no infinities, only S.1111.111 is NaN, so the
  top exponent holds normal numbers and the maximum is 448; overflow gives NaN in `torch` casts (engines scale
  first);
- fp8 e5m2: IEEE-like (inf and NaN in the top exponent), maximum 57344.
Integers with a scale (symmetric absmax quantization, Jacob et al. 2018; LLM.int8 / GPTQ use it per row or
group): scale = absmax / (2^(b-1) - 1), q = round(x / scale) clamped to [-(2^(b-1)-1), 2^(b-1)-1],
stored = q · scale. NF4 (Dettmers et al. 2023, appendix E; bitsandbytes `NF4` code): x / absmax snapped to the
nearest of 16 code values, stored = code · absmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

NF4_CODE: tuple[float, ...] = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)
"""The 16 NF4 values (QLoRA appendix E; bitsandbytes functional.py `get_4bit_type("nf4")`), index = code."""


@dataclass(frozen=True, slots=True)
class FloatFormat:
    name: str
    exponent_bits: int
    mantissa_bits: int
    ieee_specials: bool = True
    """True: the all-ones exponent is inf / NaN (IEEE). False: e4m3fn, only all-ones exponent+mantissa is NaN."""

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def max_exponent_field(self) -> int:
        top = 2**self.exponent_bits - 1
        return top - 1 if self.ieee_specials else top

    @property
    def max_value(self) -> Fraction:
        m = self.mantissa_bits
        top_mantissa = 2**m - 1 if self.ieee_specials else 2**m - 2
        return Fraction(2) ** (self.max_exponent_field - self.bias) * (1 + Fraction(top_mantissa, 2**m))

    @property
    def min_normal(self) -> Fraction:
        return Fraction(2) ** (1 - self.bias)

    @property
    def min_subnormal(self) -> Fraction:
        return Fraction(2) ** (1 - self.bias - self.mantissa_bits)

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits


FP32 = FloatFormat("fp32", 8, 23)
FP16 = FloatFormat("fp16", 5, 10)
BF16 = FloatFormat("bf16", 8, 7)
FP8_E4M3 = FloatFormat("fp8-e4m3", 4, 3, ieee_specials=False)
FP8_E5M2 = FloatFormat("fp8-e5m2", 5, 2)
FLOAT_FORMATS = (FP32, FP16, BF16, FP8_E4M3, FP8_E5M2)


@dataclass(frozen=True, slots=True)
class Encoding:
    """One value in one format. `stored` is exact (a float holds every value these formats can store)."""

    format: str
    bits: int
    sign_bit: str
    exponent_field: str
    """Exponent bits as stored ("" for integer formats)."""
    mantissa_field: str
    """Mantissa (fraction) bits as stored; for integer formats the two's-complement code; NF4 the 4-bit index."""
    exponent: int | None
    """Unbiased exponent (None for integer formats, subnormals report 1 - bias)."""
    stored: float
    """The value the format holds (nan / inf on overflow)."""
    scale: float | None
    """Integer formats: the step between codes (absmax / qmax)."""
    abs_error: float
    rel_error: float
    max_value: float
    min_normal: float | None
    min_subnormal: float | None
    note: str = ""

    @property
    def total(self) -> float:
        return self.stored


def _round_half_even(x: Fraction) -> int:
    floor = math.floor(x)
    rest = x - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def encode_float(value: float, fmt: FloatFormat) -> Encoding:
    """Round `value` to `fmt` (nearest, ties to even) and show its fields (module docstring)."""
    x = Fraction(value)
    sign = "1" if value < 0 or (value == 0 and math.copysign(1.0, value) < 0) else "0"
    m, e_bits, bias = fmt.mantissa_bits, fmt.exponent_bits, fmt.bias
    mag = abs(x)
    common = {
        "format": fmt.name,
        "bits": fmt.bits,
        "sign_bit": sign,
        "max_value": float(fmt.max_value),
        "min_normal": float(fmt.min_normal),
        "min_subnormal": float(fmt.min_subnormal),
        "scale": None,
    }
    if mag == 0:
        return Encoding(
            exponent_field="0" * e_bits,
            mantissa_field="0" * m,
            exponent=None,
            stored=0.0,
            abs_error=0.0,
            rel_error=0.0,
            **common,
        )
    exp = max(math.floor(math.log2(mag)), 1 - bias)
    while Fraction(2) ** exp > mag and exp > 1 - bias:
        exp -= 1
    while Fraction(2) ** (exp + 1) <= mag:
        exp += 1
    quantum = Fraction(2) ** (exp - m)
    q = _round_half_even(mag / quantum)
    stored = q * quantum
    if stored > fmt.max_value:
        over = "inf" if fmt.ieee_specials else "nan"
        top = "1" * e_bits
        return Encoding(
            exponent_field=top,
            mantissa_field=("0" * m) if fmt.ieee_specials else "1" * m,
            exponent=None,
            stored=float(over) * (-1 if sign == "1" else 1),
            abs_error=math.inf,
            rel_error=math.inf,
            note=f"overflow: {value} > max {float(fmt.max_value)} -> {over}",
            **common,
        )
    if stored >= Fraction(2) ** (exp + 1):
        exp += 1
    subnormal = stored < fmt.min_normal
    field = 0 if subnormal else exp + bias
    frac = stored / Fraction(2) ** (1 - bias) if subnormal else stored / Fraction(2) ** exp - 1
    mant = int(frac * 2**m)
    signed = -stored if sign == "1" else stored
    err = abs(signed - x)
    return Encoding(
        exponent_field=format(field, f"0{e_bits}b"),
        mantissa_field=format(mant, f"0{m}b"),
        exponent=(1 - bias) if subnormal else exp,
        stored=float(signed),
        abs_error=float(err),
        rel_error=float(err / abs(x)),
        note="subnormal" if subnormal else "",
        **common,
    )


def encode_int(value: float, bits: int, absmax: float) -> Encoding:
    """Symmetric absmax quantization to a signed `bits`-bit integer over [-absmax, absmax] (module docstring)."""
    qmax = 2 ** (bits - 1) - 1
    scale = Fraction(absmax) / qmax
    q = max(-qmax, min(qmax, _round_half_even(Fraction(value) / scale)))
    stored = q * scale
    err = abs(stored - Fraction(value))
    note = "clipped to absmax" if abs(value) > absmax else ""
    return Encoding(
        format=f"int{bits}",
        bits=bits,
        sign_bit="1" if q < 0 else "0",
        exponent_field="",
        mantissa_field=format(q & (2**bits - 1), f"0{bits}b"),
        exponent=None,
        stored=float(stored),
        scale=float(scale),
        abs_error=float(err),
        rel_error=float(err / abs(Fraction(value))) if value else 0.0,
        max_value=float(absmax),
        min_normal=None,
        min_subnormal=float(scale),
        note=note,
    )


def encode_nf4(value: float, absmax: float) -> Encoding:
    """NF4: value / absmax snapped to the nearest of the 16 NF4 code values, stored = code · absmax."""
    normed = max(-1.0, min(1.0, value / absmax))
    index = min(range(16), key=lambda i: abs(NF4_CODE[i] - normed))
    stored = NF4_CODE[index] * absmax
    err = abs(stored - value)
    return Encoding(
        format="nf4",
        bits=4,
        sign_bit="1" if NF4_CODE[index] < 0 else "0",
        exponent_field="",
        mantissa_field=format(index, "04b"),
        exponent=None,
        stored=stored,
        scale=absmax,
        abs_error=err,
        rel_error=err / abs(value) if value else 0.0,
        max_value=absmax,
        min_normal=None,
        min_subnormal=NF4_CODE[8] * absmax,
        note=f"code {index} = {NF4_CODE[index]:.6f} x absmax",
    )


def encode_all(value: float, absmax: float | None = None) -> tuple[Encoding, ...]:
    """`value` in fp32, fp16, bf16, fp8 e4m3 / e5m2, int8 and int4 with a scale, int8 with scale 1, NF4.

    `absmax` is the range of the tensor the value belongs to (default: |value| rounded up to a power of two, so
    that the scaled integer formats show a rounding error as in a real tensor)."""
    if absmax is None:
        absmax = 2.0 ** math.ceil(math.log2(abs(value))) if value else 1.0
    floats = tuple(encode_float(value, f) for f in FLOAT_FORMATS)
    return (
        *floats,
        encode_int(value, 8, 127.0),
        encode_int(value, 8, absmax),
        encode_int(value, 4, absmax),
        encode_nf4(value, absmax),
    )
