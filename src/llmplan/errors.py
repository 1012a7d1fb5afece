"""Exceptions raised for bad input.

Every error names the field, the value that was given and what is allowed. The CLI prints the message on one
line and exits with status 2; the web API answers HTTP 400 with the same message. Nothing in llmplan raises
these for internal bugs.
"""

from __future__ import annotations


class LlmplanError(ValueError):
    """Base class of every user-facing error: its message is shown to the user as it is."""


class SpecError(LlmplanError):
    """A value of a spec (model config, job, layout, cluster) is malformed or out of range.

    `field` names the offending input field (a config key or a CLI option) so that front ends can point at it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownIdError(LlmplanError):
    """A catalog id that does not exist; the message lists the closest ids."""

    def __init__(self, kind: str, given: str, suggestions: list[str]) -> None:
        self.kind = kind
        self.given = given
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {kind} {given!r}.{hint} (`llmplan {kind}s` lists them all)")


class UnsupportedModelError(LlmplanError):
    """A config whose `model_type` llmplan has no adapter for."""


class LayoutError(LlmplanError):
    """A parallel layout that cannot run this model (for example tp not dividing the attention heads)."""


class MissingExtraError(LlmplanError):
    """An optional dependency (torch, transformers, peft) is needed and not installed."""

    def __init__(self, feature: str, package: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed. Install the trace extra: "
            "pip install torch==2.13.0 && pip install 'llmplan[trace]'"
        )
