"""How pi is stored in each format (seed 003), with exact stored values; ranges; overflow."""

from __future__ import annotations

import math
import struct

import pytest

from llmplan.formulas.formats import (
    BF16,
    FP8_E4M3,
    FP8_E5M2,
    FP16,
    FP32,
    NF4_CODE,
    encode_all,
    encode_float,
    encode_int,
    encode_nf4,
)

PI = math.pi

# (format, stored value, exponent field, mantissa field) — source: seed 003 (fp32, fp16), IEEE 754 and the
# OCP FP8 spec for the rest; bf16 is fp32 rounded to 7 mantissa bits (nearest even).
PI_CASES = [
    (FP32, struct.unpack("<f", struct.pack("<f", PI))[0], "10000000", "10010010000111111011011"),
    (FP16, 3.140625, "10000", "1001001000"),
    (BF16, 3.140625, "10000000", "1001001"),
    (FP8_E4M3, 3.25, "1000", "101"),
    (FP8_E5M2, 3.0, "10000", "10"),
]


@pytest.mark.parametrize(
    ("fmt", "stored", "exp_field", "mant_field"), PI_CASES, ids=lambda v: getattr(v, "name", "")
)
def test_pi(fmt, stored: float, exp_field: str, mant_field: str) -> None:
    e = encode_float(PI, fmt)
    assert e.stored == stored
    assert (e.sign_bit, e.exponent_field, e.mantissa_field, e.exponent) == ("0", exp_field, mant_field, 1)
    assert e.abs_error == pytest.approx(abs(stored - PI), rel=1e-12)


def test_fp32_matches_seed_003() -> None:
    assert encode_float(PI, FP32).stored == 3.1415927410125732  # seed: 3.14159274101257324219


def test_fp16_matches_struct() -> None:
    for x in (PI, 0.1, 1e-6, 65504.0, -2.5e-8, 1234.5678):
        assert encode_float(x, FP16).stored == struct.unpack("<e", struct.pack("<e", x))[0]


@pytest.mark.parametrize(
    ("fmt", "max_value", "min_normal"),
    [
        (FP16, 65504.0, 2.0**-14),
        (BF16, 3.3895313892515355e38, 2.0**-126),
        (FP8_E4M3, 448.0, 2.0**-6),
        (FP8_E5M2, 57344.0, 2.0**-14),
        (FP32, 3.4028234663852886e38, 2.0**-126),
    ],
)
def test_ranges(fmt, max_value: float, min_normal: float) -> None:
    assert float(fmt.max_value) == max_value and float(fmt.min_normal) == min_normal


def test_fp16_max_is_65504_not_65506() -> None:
    """Seed 001 says fp16 overflows above 65506; the largest finite fp16 is 65504 and 65506 stores as 65504."""
    assert encode_float(65506.0, FP16).stored == 65504.0
    assert encode_float(65519.0, FP16).stored == 65504.0
    assert math.isinf(encode_float(65520.0, FP16).stored)


def test_e4m3_overflow_is_nan() -> None:
    assert encode_float(448.0, FP8_E4M3).stored == 448.0
    assert math.isnan(encode_float(500.0, FP8_E4M3).stored)


def test_int8_without_and_with_scale() -> None:
    assert encode_int(PI, 8, 127.0).stored == 3.0  # seed 003: "int8 ... pi = 3"
    scaled = encode_int(PI, 8, 4.0)
    assert scaled.stored == 100 * 4.0 / 127 and scaled.mantissa_field == "01100100"


def test_int4_and_nf4() -> None:
    assert encode_int(PI, 4, 4.0).stored == pytest.approx(5 * 4.0 / 7)
    nf4 = encode_nf4(PI, 4.0)
    assert nf4.stored == pytest.approx(NF4_CODE[14] * 4.0) and nf4.mantissa_field == "1110"


def test_nf4_code_is_symmetric_enough() -> None:
    assert len(NF4_CODE) == 16 and NF4_CODE[0] == -1.0 and NF4_CODE[7] == 0.0 and NF4_CODE[15] == 1.0
    assert list(NF4_CODE) == sorted(NF4_CODE)


def test_encode_all_has_every_format() -> None:
    names = [e.format for e in encode_all(3.14159)]
    assert names == ["fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2", "int8", "int8", "int4", "nf4"]


def test_subnormal_and_zero() -> None:
    tiny = encode_float(1e-7, FP16)
    assert tiny.exponent_field == "00000" and tiny.note == "subnormal"
    assert encode_float(0.0, FP16).stored == 0.0
