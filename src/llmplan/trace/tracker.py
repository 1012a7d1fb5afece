"""A lean memory tracker: a TorchDispatchMode that sees every storage born during a step and when it dies.

Each op's outputs are checked for untyped storages not seen before; a weak reference on the storage tells when
its bytes die. Every birth and death is an event, in order, tagged with the phase (forward, backward, optimizer
step, prefill, decode) and the segment (which decoder layer ran) it happened in. Categories are decided when
the step is over, from what each storage turned out to be:

- storages tagged explicitly by the step driver: parameters, gradients, optimizer states, master weights,
  KV cache, inputs;
- otherwise by where they were born: in a forward pass and still alive when that forward ended -> saved
  activations (logits/loss when born in the head); anything else -> temporaries.

Bytes are those of the storage rounded up to 512, as the CUDA caching allocator rounds every block
(`c10/cuda/CUDACachingAllocator.cpp`, `kMinBlockSize = 512`, `round_size`): the trace estimates the
`allocated` counter (`torch.cuda.max_memory_allocated`). PyTorch's own `mem_tracker.MemTracker` registers a
grad hook on every parameter (so frozen parameters raise) and keeps per-module bookkeeping on every op, which
is what makes it slow; this tracker only keeps two lists per event.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import Any

import torch
from torch._guards import active_fake_mode
from torch.utils._python_dispatch import TorchDispatchMode

ALLOCATOR_BLOCK_BYTES = 512
"""The CUDA caching allocator's minimum block and rounding unit (`kMinBlockSize`)."""


class Cat(str, Enum):
    """What a traced storage is."""

    WEIGHTS = "weights"
    """Model parameters and buffers in the dtype the model runs in (quantized bases: packed data + scales)."""
    MASTER_WEIGHTS = "master_weights"
    """fp32 copies of the trainable weights kept by the optimizer for mixed precision."""
    GRADIENTS = "gradients"
    """`.grad` of the trainable parameters (and the fp32 copies handed to the optimizer)."""
    OPTIMIZER_STATES = "optimizer_states"
    """Tensors in `optimizer.state` (AdamW's exp_avg, exp_avg_sq and step)."""
    ACTIVATIONS = "activations"
    """Born in a forward pass and still alive when it ended: saved for backward (plus the inputs)."""
    LOGITS = "logits"
    """Saved tensors born in the head: logits, their fp32 upcast, the loss."""
    TEMPORARIES = "temporaries"
    """Everything else: intermediates freed within their phase, activation gradients, optimizer scratch."""
    KV_CACHE = "kv_cache"
    """Keys and values held by the cache object during inference."""


CATS: tuple[Cat, ...] = tuple(Cat)
_INDEX = {c: i for i, c in enumerate(CATS)}


def rounded(nbytes: int) -> int:
    """Bytes the CUDA caching allocator hands out for a request: 0 stays 0, else up to a multiple of 512."""
    return -(-nbytes // ALLOCATOR_BLOCK_BYTES) * ALLOCATOR_BLOCK_BYTES


def plain_tensors(t: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors holding a tensor's bytes (the inner tensors of a wrapper subclass such as NF4)."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is None or type(t) in (torch.Tensor, torch.nn.Parameter) or _is_fake(t):
        return [t]
    names, _ = t.__tensor_flatten__()
    out: list[torch.Tensor] = []
    for name in names:
        inner = getattr(t, name)
        if isinstance(inner, torch.Tensor):
            out.extend(plain_tensors(inner))
    return out


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


@dataclass(slots=True)
class _Storage:
    nbytes: int
    phase: int
    segment: int
    freed_at: int | None = None
    tag: Cat | None = None


@dataclass(slots=True)
class Phase:
    """A phase of the step: its name, the step it belongs to and its first event."""

    name: str
    step: int
    first_event: int
    forward: bool


@dataclass
class Tracker(TorchDispatchMode):
    """Records storage births and deaths; `categorised()` turns them into live bytes per category."""

    storages: list[_Storage] = field(default_factory=list)
    events: list[tuple[int, int, int]] = field(default_factory=list)
    """(storage index, +1 birth / -1 death, segment index) in order."""
    phases: list[Phase] = field(default_factory=list)
    segments: list[tuple[int, str, int]] = field(default_factory=list)
    """(phase index, kind, layer index or -1) for every segment opened."""
    head_segments: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__()
        self._ids: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}
        self.closed = False
        self._dtensor: type | None = None
        self._wait: Any = None
        self._fake_on_entry: Any = None
        self.phase("setup", 0)

    # --- markers set by the step driver -----------------------------------------------------------------
    def phase(self, name: str, step: int) -> None:
        self.phases.append(Phase(name, step, len(self.events), name in ("forward", "prefill", "decode")))
        self.segment("start", -1)

    def segment(self, kind: str, layer: int) -> None:
        label = (len(self.phases) - 1, kind, layer)
        if self.segments and self.segments[-1] == label:
            return
        self.segments.append(label)
        if kind == "head":
            self.head_segments.add(len(self.segments) - 1)

    @property
    def current_phase(self) -> Phase:
        return self.phases[-1]

    def tag(self, t: torch.Tensor, cat: Cat) -> None:
        """Say what a tensor's storage is (registering it when it was born outside the tracker)."""
        for plain in plain_tensors(t):
            idx = self._see(plain)
            if idx is not None and self.storages[idx].tag is None:
                self.storages[idx].tag = cat

    def retag(self, t: torch.Tensor, cat: Cat) -> None:
        """As `tag`, overriding an earlier tag."""
        for plain in plain_tensors(t):
            idx = self._see(plain)
            if idx is not None:
                self.storages[idx].tag = cat

    # --- dispatch ---------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        # As torch.distributed._tools.fsdp2_mem_tracker does: let DTensor desugar into local ops first; skip
        # the ops of DTensor's sharding propagation, which run under a fake mode of their own; and take
        # `wait_tensor` as returning its input (its meta kernel makes a new tensor, eager does not).
        if self._dtensor is not None and self._dtensor in types:
            return NotImplemented
        if self._dtensor is not None and active_fake_mode() is not self._fake_on_entry:
            return func(*args, **(kwargs or {}))
        if func is self._wait and args:
            func(*args, **(kwargs or {}))
            return args[0]
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self._see(out)
        elif isinstance(out, (tuple, list)):
            for item in out:
                if isinstance(item, torch.Tensor):
                    self._see(item)
                elif isinstance(item, (tuple, list)):
                    for sub in item:
                        if isinstance(sub, torch.Tensor):
                            self._see(sub)
        if func is torch.ops.aten.resize_.default:
            self._resized(args[0].untyped_storage())
        return out

    def _see(self, t: torch.Tensor) -> int | None:
        if self.closed:
            return None
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError, TypeError):
            for plain in plain_tensors(t):
                if plain is not t:
                    self._see(plain)
            return None
        key = id(st)
        idx = self._ids.get(key)
        if idx is not None:
            return idx
        nbytes = rounded(st.nbytes())
        idx = len(self.storages)
        seg = len(self.segments) - 1
        self.storages.append(_Storage(nbytes, len(self.phases) - 1, seg))
        self._ids[key] = idx
        self._refs[key] = weakref.ref(st, partial(self._died, key, idx))
        self.events.append((idx, 1, seg))
        return idx

    def _resized(self, st: torch.UntypedStorage) -> None:
        if self.closed:
            return
        key = id(st)
        idx = self._ids.get(key)
        if idx is None or rounded(st.nbytes()) == self.storages[idx].nbytes:
            return
        # A resize is the death of the old block and the birth of a new one under the same storage object,
        # which keeps the old one's tag.
        tag = self.storages[idx].tag
        self._died(key, idx)
        self._ids.pop(key, None)
        new = len(self.storages)
        seg = len(self.segments) - 1
        self.storages.append(_Storage(rounded(st.nbytes()), len(self.phases) - 1, seg, tag=tag))
        self._ids[key] = new
        self._refs[key] = weakref.ref(st, partial(self._died, key, new))
        self.events.append((new, 1, seg))

    def __enter__(self) -> Tracker:
        # A storage's resize_ (FSDP2 frees and re-allocates unsharded parameters so) is not a dispatched op.
        self._orig_resize = torch.UntypedStorage.resize_
        tracker = self

        def resize_(st: torch.UntypedStorage, size: int) -> Any:
            out = tracker._orig_resize(st, size)
            tracker._resized(st)
            return out

        torch.UntypedStorage.resize_ = resize_
        self._dtensor = None
        self._wait = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from torch.distributed.tensor import DTensor

            self._dtensor = DTensor
            self._wait = torch.ops._c10d_functional.wait_tensor.default
        self._fake_on_entry = active_fake_mode()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        self.stop()
        torch.UntypedStorage.resize_ = self._orig_resize
        return super().__exit__(*exc)

    def stop(self) -> None:
        """Record nothing more (the step is over; what dies now is the teardown of the step's objects)."""
        self.closed = True

    def _died(self, key: int, idx: int, _ref: object = None) -> None:
        if self.closed:
            return
        if self._ids.get(key) == idx:
            del self._ids[key]
            self._refs.pop(key, None)
        self.storages[idx].freed_at = len(self.events)
        self.events.append((idx, -1, len(self.segments) - 1))

    # --- results ----------------------------------------------------------------------------------------
    def category(self, idx: int) -> Cat:
        s = self.storages[idx]
        if s.tag is not None:
            return s.tag
        phase = self.phases[s.phase]
        if phase.forward and phase.name == "forward":
            end = self._phase_end(s.phase)
            if s.freed_at is None or s.freed_at >= end:
                return Cat.LOGITS if s.segment in self.head_segments else Cat.ACTIVATIONS
        return Cat.TEMPORARIES

    def _phase_end(self, phase_idx: int) -> int:
        if phase_idx + 1 < len(self.phases):
            return self.phases[phase_idx + 1].first_event
        return len(self.events)

    def timeline(self) -> list[tuple[int, ...]]:
        """Live bytes per category (in `CATS` order) after every event."""
        cats = [_INDEX[self.category(i)] for i in range(len(self.storages))]
        live = [0] * len(CATS)
        out: list[tuple[int, ...]] = []
        for idx, sign, _seg in self.events:
            live[cats[idx]] += sign * self.storages[idx].nbytes
            out.append(tuple(live))
        return out

    def event_phase(self) -> list[int]:
        """Phase index of every event."""
        out: list[int] = []
        for p, phase in enumerate(self.phases):
            end = self._phase_end(p)
            out.extend([p] * (end - phase.first_event))
        return out
