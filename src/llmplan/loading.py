"""Resolve what the user names as a model: a catalog id, a local config.json or folder, or a hub id.

Only `config.json` is ever read, as data. A hub id is fetched through huggingface_hub (config.json alone);
without network the error tells the user to pass a local file instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmplan import catalog
from llmplan.adapters import parse_config
from llmplan.errors import LlmplanError, SpecError, UnknownIdError
from llmplan.specs.model import ModelSpec


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config.json (or the config.json inside a model folder)."""
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise SpecError("model", f"no such file: {path} (give a catalog id, a config.json, a model folder or org/name)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError("model", f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("model", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError("model", f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def fetch_hub_config(repo_id: str) -> dict[str, Any]:
    """Download config.json of a hub repository (only that file) through huggingface_hub."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        path = hf_hub_download(repo_id, "config.json")
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise LlmplanError(f"model: the hub has no config.json for {repo_id!r} (check the id, or pass a local file)") from None
    except Exception as exc:  # network, proxy, auth: huggingface_hub raises many types for these
        raise LlmplanError(
            f"model: could not fetch config.json of {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: "
            "offline or unreachable); download config.json elsewhere and pass its local path instead"
        ) from None
    return read_config_file(Path(path))


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return len(parts) == 2 and all(parts) and not ref.endswith(".json")


def load_model(ref: str) -> ModelSpec:
    """ModelSpec from a catalog id, a path to a config.json or a model folder, or a hub id `org/name`."""
    ref = ref.strip()
    if not ref:
        raise SpecError("model", "is empty (give a catalog id such as llama-2-7b, a config.json, or org/name)")
    if catalog.is_model_id(ref):
        entry = catalog.model_entry(ref)
        return parse_config(entry.config, entry.id)
    path = Path(ref).expanduser()
    if path.exists():
        return parse_config(read_config_file(path), str(path))
    if ref.endswith(".json") or ref.startswith((".", "/", "~")):
        raise SpecError("model", f"no such file: {ref}")
    if _looks_like_hub_id(ref):
        known = catalog.find_by_hub_id(ref)
        if known is not None:
            return parse_config(known.config, known.id)
        return parse_config(fetch_hub_config(ref), ref)
    raise UnknownIdError("model", ref, catalog.suggest(ref, catalog.model_ids()))
