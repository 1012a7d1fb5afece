"""Exceptions raised for bad input.

Every error names the field, the value that was given and what is allowed. The CLI prints the message on one
line and exits with status 2; the web API answers HTTP 400 with the same message. Nothing in llmplan raises
these for internal bugs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class LlmplanError(ValueError):
    """Base class of every user-facing error: its message is shown to the user as it is."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: which field, the value given, what is allowed, and the whole sentence.

    `problems(...)` functions return these instead of raising, so that a layout search can prune without
    exceptions and a front end can show every problem at once.
    """

    field: str
    """The input field (a config key, a spec field or a CLI option name without dashes)."""
    value: str
    """The value that was given, as the user would write it."""
    allowed: str
    """What is allowed instead, in words ("integers 1 to 1,048,576", "a divisor of 32")."""
    message: str
    """The sentence shown after `field: `; it contains the value and the allowed range."""

    @classmethod
    def of(cls, field: str, value: object, allowed: str, reason: str) -> Problem:
        """A problem whose message reads `<value> <reason> (allowed: <allowed>)`."""
        shown = _shown(value)
        return cls(
            field=field, value=shown, allowed=allowed, message=f"{shown} {reason} (allowed: {allowed})"
        )

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _shown(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


class SpecError(LlmplanError):
    """A value of a spec (model config, job, layout, cluster) is malformed or out of range.

    `field` names the offending input field (a config key or a CLI option) so that front ends can point at it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    @classmethod
    def of(cls, problem: Problem) -> SpecError:
        return cls(problem.field, problem.message)


class UnknownIdError(LlmplanError):
    """A catalog id that does not exist; the message lists the closest ids."""

    def __init__(self, kind: str, given: str, suggestions: list[str]) -> None:
        self.kind = kind
        self.given = given
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        extra = ", a config.json, a model folder or org/name" if kind == "model" else ""
        super().__init__(
            f"{kind}: {given!r} is an unknown {kind} id{hint} (allowed: the ids `llmplan {kind}s` lists{extra})"
        )


class UnsupportedModelError(LlmplanError):
    """A config whose `model_type` llmplan has no adapter for."""


class LayoutError(LlmplanError):
    """A parallel layout that cannot run this model (for example tp not dividing the attention heads)."""


class InvalidInputError(SpecError, LayoutError):
    """Every problem of an input at once (all of a job's and layout's, say): one line per problem.

    It is a SpecError and a LayoutError, so code that catches either keeps working; `problems` holds the
    typed records and `field` the first problem's field.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("InvalidInputError needs at least one problem")
        self.field = self.problems[0].field
        LlmplanError.__init__(self, "\n".join(str(p) for p in self.problems))


def raise_problems(problems: Iterable[Problem]) -> None:
    """Raise InvalidInputError carrying `problems` when there are any."""
    found = tuple(problems)
    if found:
        raise InvalidInputError(found)


class MissingExtraError(LlmplanError):
    """An optional dependency (torch, transformers, peft) is needed and not installed."""

    def __init__(self, feature: str, package: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed. Install the trace extra: "
            "pip install torch==2.13.0 && pip install 'llmplan[trace]'"
        )
