"""Launch configurations: a plan written out for the engine that runs it, and read back.

One module per target; each writes every value the estimate depends on explicitly (no "auto", no engine default
left implicit) from the same records the estimate used (`llmplan.stacks` for the stack defaults), and refuses a
plan the target cannot express with an `EmitError` naming the target and the setting.

- `deepspeed`: the DeepSpeed JSON (`deepspeed.runtime.config.DeepSpeedConfig` reads it) and its launch command;
  `read_deepspeed` turns such a JSON back into the job and layout fields it sets;
- `peft`: the adapter_config.json of the peft method (`peft.LoraConfig(**...)` and the other config classes);
  `read_peft` reads one back;
- `accelerate`: the `accelerate launch --config_file` YAML (FSDP, DeepSpeed plugin, DDP), read back too;
- serving (`llmplan serve --emit`): `vllm` (EngineArgs YAML + `vllm serve` line, read back by `serve --from`),
  `sglang` (ServerArgs flags), `trtllm` (trtllm-serve options + YAML), each from `serving.ServePlan`, the settings the serving estimate resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from llmplan.errors import LlmplanError, SpecError


class Target(str, Enum):
    """What `llmplan emit` writes."""

    DEEPSPEED = "deepspeed"
    """DeepSpeed JSON (ds_config.json) and the `deepspeed` launcher command."""
    PEFT = "peft"
    """peft adapter_config.json (LoraConfig and the prompt / prefix / p-tuning configs)."""
    ACCELERATE = "accelerate"
    """accelerate config YAML (FSDP / DeepSpeed plugin / DDP) and the `accelerate launch` command."""


class ServeTarget(str, Enum):
    """What `llmplan serve --emit` writes (llmplan.emit.serving and one module per engine)."""

    VLLM = "vllm"
    """`vllm serve MODEL --config vllm.yaml` (EngineArgs fields) and the same arguments as flags."""
    SGLANG = "sglang"
    """`python -m sglang.launch_server` arguments (ServerArgs fields) as a shell script."""
    TRTLLM = "trtllm"
    """`trtllm-serve MODEL` options and its --config (extra_llm_api_options) YAML."""


class EmitError(LlmplanError):
    """The plan has a setting the target cannot express."""

    def __init__(self, target: str, setting: str, message: str) -> None:
        self.target = target
        self.setting = setting
        super().__init__(f"{target}: {setting}: {message}")


def read_error(path: str, key: str, message: str) -> SpecError:
    """An unreadable `--from` file: the error names the file and the key that failed."""
    return SpecError("--from", f"{path}: key {key!r}: {message}")


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """One emitted configuration: the file's name and text, and the command that launches the job with it."""

    target: str
    filename: str
    text: str
    command: str
