"""The commands as functions: option values in, typed estimates and the `--json` documents (llmplan.schema) out.

The CLI (`llmplan.cli`) and the web API (`llmplan.web`) are thin layers over these functions, so that both
answer the same question with the same numbers and the same JSON. `options` holds the bounds and the
option -> job / layout / cluster functions; `train`, `serve`, `plan` and `emit` one command each.
"""
