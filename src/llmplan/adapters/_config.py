"""Read fields of a config.json with validation: every bad value names its key (its path inside the file, e.g.
`text_config.hidden_size`), the value and what is allowed. Integers are bounded by `llmplan.limits` (the key's
own bound, e.g. layers or widths, else the bound of any integer field); numbers must be finite."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from llmplan import limits
from llmplan.errors import SpecError


class ConfigView:
    """A read-only view of a config dict whose getters validate type and range."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        """Path of `data` inside the file ("text_config." for Gemma 3's text part), put before each key."""

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def int(
        self, key: str, default: int | None = None, *, minimum: int = 1, aliases: tuple[str, ...] = ()
    ) -> int:
        """An integer from `minimum` to the key's bound (`limits.config_bound`); `aliases` are older key names
        tried in order when `key` is absent. Floats with an integer value (4096.0) are accepted."""
        for name in (key, *aliases):
            value = self.data.get(name)
            if value is not None:
                break
        else:
            if default is None:
                raise SpecError(
                    self.path(key), f"missing from {self.source}; an integer >= {minimum} is required"
                )
            return default
        bound = limits.config_bound(name)
        allowed = f"integers {minimum} to {bound.high:,}"
        shown = _kind(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(
                self.path(name), f"{shown} in {self.source} is not an integer (allowed: {allowed})"
            )
        if not minimum <= value <= bound.high:
            raise SpecError(
                self.path(name), f"{shown} in {self.source} is out of range (allowed: {allowed}; {bound.why})"
            )
        return value

    def optional_int(self, key: str, *, minimum: int = 1) -> int | None:
        return self.int(key, minimum=minimum) if self.has(key) else None

    def float(self, key: str, default: float | None = None) -> float | None:
        """A finite number (NaN, infinities and integers beyond fp64 are refused)."""
        value = self.data.get(key)
        if value is None:  # absent or null: the default, as for integers
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(
                self.path(key), f"{_kind(value)} in {self.source} is not a number (allowed: finite numbers)"
            )
        if isinstance(value, limits.OversizedInt) or not math.isfinite(float(value)):
            raise SpecError(
                self.path(key), f"{value!r} in {self.source} is not finite (allowed: finite numbers)"
            )
        return float(value)

    def _typed(self, key: str, default: Any, kind: type, allowed: str) -> Any:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, kind):
            raise SpecError(
                self.path(key), f"{_kind(value)} in {self.source} is not {allowed} (allowed: {allowed})"
            )
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
                self.path(numerator_key),
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
            theta = ConfigView(params, self.source, self.path("rope_parameters.")).float("rope_theta", theta)
            if scaling is None and params.get("rope_type", "default") != "default":
                scaling = params
        if scaling is not None and not isinstance(scaling, dict):
            raise SpecError(
                self.path("rope_scaling"),
                f"{_kind(scaling)} in {self.source} is not an object (allowed: an object)",
            )
        if scaling is not None:
            view = ConfigView(scaling, self.source, self.path("rope_scaling."))
            view.float("factor")
            view.optional_int("original_max_position_embeddings")
            if not isinstance(scaling.get("rope_type", scaling.get("type", "")), str):
                raise SpecError(
                    self.path("rope_scaling.rope_type"),
                    f"is not a string in {self.source} (allowed: e.g. linear, dynamic, yarn, llama3)",
                )
        return theta, scaling

    def int_list(self, key: str, *, minimum: int = 0) -> list[int]:
        """A list of integers (layer indices, say); [] when absent."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise SpecError(
                self.path(key), f"{_kind(value)} in {self.source} is not a list (allowed: a list of integers)"
            )
        view = ConfigView({str(i): v for i, v in enumerate(value)}, self.source, self.path(key) + "[")
        return [view.int(str(i), minimum=minimum) for i in range(len(value))]


def _kind(value: object) -> str:
    """A value as a message shows it: short values as they are, long ones by their type."""
    text = repr(value)
    if isinstance(value, int) and not isinstance(value, (bool, limits.OversizedInt)) and len(text) > 30:
        return f"<a {len(text)}-digit integer>"
    return text if len(text) <= 60 else f"a {type(value).__name__} ({len(text):,} characters)"
