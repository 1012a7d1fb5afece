"""Read fields of a config.json with validation: every bad value names its key and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmplan.errors import SpecError


class ConfigView:
    """A read-only view of a config dict whose getters validate type and range."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def int(
        self, key: str, default: int | None = None, *, minimum: int = 1, aliases: tuple[str, ...] = ()
    ) -> int:
        """An integer >= `minimum`; `aliases` are older key names tried in order when `key` is absent."""
        for name in (key, *aliases):
            value = self.data.get(name)
            if value is not None:
                break
        else:
            if default is None:
                raise SpecError(key, f"missing from {self.source}; an integer >= {minimum} is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SpecError(
                    name, f"{value!r} in {self.source} is not an integer (allowed: integers >= {minimum})"
                )
        if value < minimum:
            raise SpecError(
                name, f"{value} in {self.source} is out of range (allowed: integers >= {minimum})"
            )
        return value

    def optional_int(self, key: str, *, minimum: int = 1) -> int | None:
        return self.int(key, minimum=minimum) if self.has(key) else None

    def float(self, key: str, default: float | None = None) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(key, f"{value!r} in {self.source} is not a number")
        return float(value)

    def _typed(self, key: str, default: Any, kind: type, allowed: str) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, kind):
            raise SpecError(key, f"{value!r} in {self.source} is not {allowed}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        return self._typed(key, default, bool, "true or false")

    def str(self, key: str, default: str) -> str:
        return self._typed(key, default, str, "a string")

    def torch_dtype(self, default: str) -> str:
        """The published weights' dtype: `torch_dtype`, or `dtype` as transformers v5 writes it."""
        return self.str("torch_dtype", self.str("dtype", default))

    def divides(self, numerator_key: str, numerator: int, denominator_key: str, denominator: int) -> None:
        """Require `denominator` to divide `numerator`, naming both keys when it does not."""
        if numerator % denominator:
            raise SpecError(
                numerator_key,
                f"{numerator} is not divisible by {denominator_key}={denominator} in {self.source} "
                f"(allowed: a multiple of {denominator})",
            )

    def architecture(self, default: str) -> str:
        archs = self.data.get("architectures")
        if isinstance(archs, list) and archs and isinstance(archs[0], str):
            return archs[0]
        return default

    def rope(self) -> tuple[float | None, dict[str, object] | None]:
        """(rope_theta, rope_scaling), read from the v4 keys or transformers v5's `rope_parameters`."""
        params = self.data.get("rope_parameters")
        scaling = self.data.get("rope_scaling")
        theta = self.float("rope_theta")
        if isinstance(params, dict):
            theta = params.get("rope_theta", theta)
            if scaling is None and params.get("rope_type", "default") != "default":
                scaling = params
        if scaling is not None and not isinstance(scaling, dict):
            raise SpecError("rope_scaling", f"{scaling!r} in {self.source} is not an object")
        return (float(theta) if theta is not None else None), scaling
