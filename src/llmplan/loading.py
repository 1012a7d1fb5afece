"""Resolve what the user names as a model: a catalog id, a local config.json or folder, or a hub id.

Only `config.json` is ever read, as data; model-repository code is never executed. A file is checked before
it is parsed: at most 4 MiB (published configs are under 100 KiB) and nested at most 64 deep (they nest 3),
integers of at most 30 digits, no NaN / Infinity (not JSON). A hub id is fetched through huggingface_hub
(config.json alone). With HF_HUB_OFFLINE set, or when the hub's host (or the HTTPS proxy) cannot be reached
within HUB_PROBE_TIMEOUT_S, it fails at once saying "offline" and how to pass a local config.json; a network
failure is never reported as the hub lacking the file.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmplan import catalog, limits
from llmplan.adapters import parse_config
from llmplan.errors import LlmplanError, SpecError, UnknownIdError
from llmplan.formulas.params import count_params
from llmplan.specs.model import ModelSpec
from llmplan.units import MIB

MAX_CONFIG_BYTES = 4 * MIB
MAX_CONFIG_DEPTH = 64
HUB_PROBE_TIMEOUT_S = 1.0
"""How long the reachability probe of the hub waits (DNS and TCP connect) before answering "offline"."""
_TRUTHY = {"1", "ON", "YES", "TRUE"}
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nesting_depth(text: str) -> int:
    """Deepest nesting of [ ] and { } outside strings (the text is not parsed)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_CONFIG_DEPTH:
                return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 30:
        return limits.OversizedInt(len(digits.lstrip("-")))
    return int(digits)


def _refuse_constant(name: str) -> float:
    raise SpecError("model", f"the config holds {name}, which is not JSON (allowed: finite numbers)")


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """Parse config.json text under the size, depth and number limits; SpecError naming what broke them."""
    if len(text) > MAX_CONFIG_BYTES:
        raise SpecError(
            "model", f"{source} holds {len(text):,} characters (allowed: at most {MAX_CONFIG_BYTES:,})"
        )
    depth = _nesting_depth(text)
    if depth > MAX_CONFIG_DEPTH:
        raise SpecError(
            "model",
            f"{source} is nested more than {MAX_CONFIG_DEPTH} deep (allowed: at most {MAX_CONFIG_DEPTH})",
        )
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(
            "model", f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            "model", f"{source} holds a JSON {type(data).__name__}, not an object (allowed: an object)"
        )
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config.json (or the config.json inside a model folder)."""
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise SpecError(
            "model",
            f"no such file: {path} (allowed: a catalog id, a config.json, a model folder or org/name)",
        )
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise SpecError(
                "model", f"{path} is {size:,} bytes (allowed: a config.json of at most {MAX_CONFIG_BYTES:,})"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("model", f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecError("model", f"cannot read {path}: {exc.strerror}") from None
    return parse_config_text(text, str(path))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value, as huggingface_hub reads it."""
    return any(
        os.environ.get(name, "").upper() in _TRUTHY for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _probe_target() -> tuple[str, int]:
    """The host and port a hub request connects to first: the HTTPS proxy when one is set, else the endpoint."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or the proxy) opens within `timeout_s`, DNS included (run in a
    daemon thread: name resolution has no timeout of its own)."""
    host, port = _probe_target()
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(result and result[0])


def _local_hint(repo_id: str) -> str:
    return (
        "allowed offline: a catalog id (llmplan models) or a local config.json; fetch "
        f"https://huggingface.co/{repo_id}/resolve/main/config.json where there is network, then run e.g. "
        "`llmplan params ./config.json` (a folder holding it works too)"
    )


def fetch_hub_config(repo_id: str) -> dict[str, Any]:
    """Download config.json of a hub repository (only that file) through huggingface_hub; a copy in the local
    hub cache is used when offline."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError
    except ImportError:
        raise LlmplanError(
            f"model: {repo_id!r} is a hub id and huggingface_hub is not installed; {_local_hint(repo_id)}"
        ) from None

    def cached() -> str | None:
        try:
            return hf_hub_download(repo_id, "config.json", local_files_only=True)
        except Exception:  # not in the cache: huggingface_hub raises several types for it
            return None

    if hub_offline() or not hub_reachable():
        path = cached()
        if path is not None:
            return read_config_file(Path(path))
        why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{_probe_target()[0]} cannot be reached"
        raise LlmplanError(
            f"model: offline ({why}), and config.json of {repo_id!r} is not in the local hub cache; "
            f"{_local_hint(repo_id)}"
        )
    try:
        path = hf_hub_download(repo_id, "config.json", etag_timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        raise LlmplanError(
            f"model: {repo_id!r} is gated on the hub (log in with `hf auth login` after accepting its terms, or "
            f"{_local_hint(repo_id)})"
        ) from None
    except RepositoryNotFoundError:
        raise LlmplanError(
            f"model: the hub answered that {repo_id!r} does not exist or is private (check the id, or "
            f"{_local_hint(repo_id)})"
        ) from None
    except EntryNotFoundError:
        raise LlmplanError(
            f"model: the hub answered that {repo_id!r} has no config.json; {_local_hint(repo_id)}"
        ) from None
    except Exception as exc:  # network, proxy, TLS: huggingface_hub raises many types for these
        raise LlmplanError(
            f"model: offline or the network failed while fetching config.json of {repo_id!r} "
            f"({type(exc).__name__}); {_local_hint(repo_id)}"
        ) from None
    return read_config_file(Path(path))


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return len(parts) == 2 and all(parts) and not ref.endswith(".json")


def checked(spec: ModelSpec) -> ModelSpec:
    """The spec, once its total parameter count is inside `limits.PARAMS` (every field is bounded on its own;
    this catches absurd combinations)."""
    total = count_params(spec).total
    if total > limits.PARAMS.high:
        raise SpecError(
            "config",
            f"{spec.name} describes {total:.3g} parameters (allowed: up to {limits.PARAMS.high:.0e}; "
            f"{limits.PARAMS.why}): check its widths and layer count",
        )
    return spec


def load_model(ref: str) -> ModelSpec:
    """ModelSpec from a catalog id, a path to a config.json or a model folder, or a hub id `org/name`."""
    ref = ref.strip()
    if not ref:
        raise SpecError(
            "model", "is empty (allowed: a catalog id such as llama-2-7b, a config.json, or org/name)"
        )
    if catalog.is_model_id(ref):
        entry = catalog.model_entry(ref)
        return parse_config(entry.config, entry.id)
    path = Path(ref).expanduser()
    if path.exists():
        return checked(parse_config(read_config_file(path), str(path)))
    if ref.endswith(".json") or ref.startswith((".", "/", "~")):
        raise SpecError("model", f"no such file: {ref} (allowed: an existing config.json or model folder)")
    if _looks_like_hub_id(ref):
        known = catalog.find_by_hub_id(ref)
        if known is not None:
            return parse_config(known.config, known.id)
        return checked(parse_config(fetch_hub_config(ref), ref))
    raise UnknownIdError("model", ref, catalog.suggest(ref, catalog.model_ids()))
