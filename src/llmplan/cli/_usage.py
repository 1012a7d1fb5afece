"""Usage errors (typer's parser: a value that is not a number, an unknown choice or option, a missing argument)
as one line naming the option, the value given and what is allowed, like every other input error."""

from __future__ import annotations

import re

import typer

from llmplan.cli.options import OPTION_BOUNDS

_CHOICES = re.compile(r"is not one of (.*?)\.?$")
_WHAT = {
    "model": "a catalog id (llmplan models), a config.json, a model folder or org/name",
    "value": "a finite number, e.g. 3.14159",
}
_REASONS = {
    "int_parsing": ("is not an integer", "integers"),
    "int_from_float": ("is not an integer", "integers"),
    "float_parsing": ("is not a number", "numbers"),
    "bool_parsing": ("is not true or false", "true, false"),
}


def usage_line(exc: typer.TyperException, commands: list[str], argv: list[str]) -> str:
    """The one-line message of a usage error (without the `error: ` prefix)."""
    ctx = getattr(exc, "ctx", None)
    command = (
        f"llmplan {ctx.command.name}" if ctx is not None and ctx.command.name != "llmplan" else "llmplan"
    )
    param = getattr(exc, "param", None)
    name = type(exc).__name__
    if name == "MissingParameter" and param is not None:
        field = param.opts[0] if param.param_type_name == "option" else param.name.upper()
        what = _WHAT.get(param.name, f"see `{command} --help`")
        return f"{field}: missing (allowed: {what})"
    if name == "BadParameter" and param is not None:
        return _bad_parameter(exc, param)
    if name == "NoSuchOption":
        options = ", ".join(sorted(getattr(exc, "possibilities", None) or []))
        allowed = (
            f"did you mean {options}? Or see `{command} --help`" if options else f"see `{command} --help`"
        )
        return f"{exc.option_name}: no such option of `{command}` (allowed: {allowed})"
    if name == "BadOptionUsage":
        option = getattr(exc, "option_name", "option")
        text = exc.format_message()
        if "requires an argument" in text:
            return f"{option}: no value given (allowed: {_allowed_of(option.lstrip('-').replace('-', '_'))})"
        given = [a.split("=", 1)[1] for a in argv if a.startswith(f"{option}=")]
        if "does not take a value" in text and given:
            return f"{option}: takes no value, {given[0]!r} given (allowed: {option} alone)"
        return f"{option}: {text.rstrip('.')} (see `{command} --help`)"
    text = exc.format_message().rstrip(".")
    extra = re.match(r"Got unexpected extra argument(?:\(s\)|s)? \((.*)\)", text)
    if extra:
        return f"arguments: {extra.group(1)!r} unexpected (allowed: the arguments `{command} --help` lists)"
    if text.startswith("No such command"):
        return f"command: {text} (allowed: {', '.join(commands)})"
    return f"{text} (see `{command} --help`)"


def _bad_parameter(exc: typer.TyperException, param) -> str:
    field = param.opts[0] if param.param_type_name == "option" else param.name.upper()
    cause = exc.__cause__
    errors = cause.errors() if hasattr(cause, "errors") else []
    first = errors[0] if errors else {}
    value = first.get("input", "")
    kind = first.get("type", "")
    if kind in _REASONS:
        reason, allowed = _REASONS[kind]
        bound = OPTION_BOUNDS.get(param.name)
        return f"{field}: {value!r} {reason} (allowed: {bound.allowed if bound else allowed})"
    message = str(first.get("msg", exc.format_message()))
    choices = _CHOICES.search(message)
    if choices:
        allowed = choices.group(1).replace("'", "")
        return f"{field}: {value!r} is not a choice (allowed: {allowed})"
    return f"{field}: {value!r} is not accepted: {message} (see `--help`)"


def _allowed_of(name: str) -> str:
    bound = OPTION_BOUNDS.get(name)
    return bound.allowed if bound else "see --help"
