"""The service's costly JSON and protobuf work, done in a process of its own so that it never holds up the
event loop.

Rendering a state in protobuf's JSON mapping (`decode=true`), parsing a JSON state (a write's `state`),
checking a large payload of a type that can repeat messages, and parsing a request body of many JSON values
(`app.api.bodies`, which serializes the body's JSON states there too: `serialize_json_state`) each cost
time per value with the interpreter lock held. On the event loop that time holds up every other request,
`/healthz` included; on a thread it still does, through the lock. So that work runs in one worker process,
started on first use with the service's descriptor sets, and the event loop only hands it bytes and awaits
bytes. Work that is quick whatever the state holds is done in place, where the trip to the worker would
cost more than the work: a payload the registry checks quickly (`TypeRegistry.checks_quickly`), states
of at most `QUICK_RENDER_BYTES` of payloads (a value takes at least a byte of one), and JSON states of at
most `QUICK_PARSE_VALUES`. docs/bounded-answers.md has the figures.

Two lanes, each a worker process of its own (`app._worker_lane`), so that writes never wait behind the
decoding of reads: the write lane checks payloads, parses JSON states and request bodies; the read lane
renders. Each lane shares its worker fairly between callers (by API key, else by connection), by the
bytes their calls hand over.

Bounds:
- One state renders or parses at most `MAX_RENDERED_VALUES` values (`app.protobuf`); beyond, it is not
  rendered (its `error` says so), and a JSON state is refused.
- One answer renders at most `MAX_ANSWER_VALUES` values: `render` renders the states in order until the
  next would pass it (the first always renders), and the caller answers the rest as not read yet.
- A state that cannot be rendered (beyond the cap, a payload that does not parse as its type, a value with
  no JSON form) comes back with an `error` rather than failing the others.
- A lane holds at most `MAX_QUEUED_CALLS` waiting calls, and one caller at most `MAX_CALLS_PER_CALLER`
  of them; one more is a 503 with `Retry-After`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app._worker_lane import WorkerLane
from app.errors import InvalidState
from app.json_bytes import json_bytes
from app.protobuf import MAX_RENDERED_VALUES, TooManyValues, TypeRegistry

if TYPE_CHECKING:
    from app.settings import UnknownFields

MAX_ANSWER_VALUES = 250_000
QUICK_RENDER_BYTES = 1024
QUICK_PARSE_VALUES = 256
_PARENT_CHECK_SECONDS = 1.0

_Result = TypeVar("_Result")


@dataclass(frozen=True, slots=True)
class SerializedState:
    """A write's JSON state, serialized in the worker as it parsed the body (`serialize_json_state`): the
    payload, or why the state was refused."""

    payload: bytes | None
    refusal: str = ""

    def checked(self) -> bytes:
        """The payload, or the refusal as `InvalidState`, as `TypeRegistry.from_json` would have raised it."""
        if self.payload is None:
            raise InvalidState(self.refusal)
        return self.payload


@dataclass(frozen=True, slots=True)
class Rendered:
    """A state rendered: `json`, the message in protobuf's JSON mapping (None: its type is not known, or
    `error` says why it could not be rendered), and whether the payload held fields the type does not
    define, which the JSON leaves out."""

    json: bytes | None
    unknown_fields: bool
    error: str | None = None


class ProtobufWorker:
    """What the service asks of its types: `types` answers at once, the rest goes through the worker."""

    def __init__(self, types: TypeRegistry, descriptor_sets: Sequence[Path]) -> None:
        self.types = types
        self._writes = WorkerLane(_load_types, tuple(descriptor_sets))
        self._reads = WorkerLane(_load_types, tuple(descriptor_sets))

    async def check_payload(self, manifest: str, payload: bytes, unknown_fields: UnknownFields) -> None:
        """`TypeRegistry.check_payload`, in place when it is quick."""
        if self.types.checks_quickly(manifest, len(payload)):
            self.types.check_payload(manifest, payload, unknown_fields)
        else:
            await self._writes.run(_check_payload, manifest, payload, unknown_fields, cost=len(payload))

    async def from_json(self, manifest: str, state: Any) -> bytes:
        """`TypeRegistry.from_json`; a state refused on its shape or size is refused before the trip."""
        values = self.types.check_json_state(manifest, state)
        if values <= QUICK_PARSE_VALUES:
            return self.types.from_json(manifest, state)
        return await self._writes.run(_from_json, manifest, state, cost=values)

    async def render(self, states: Sequence[tuple[str, bytes]]) -> list[Rendered]:
        """The (manifest, payload) states rendered, in order, as many as one answer may hold."""
        size = sum(len(payload) for _, payload in states)
        if size <= QUICK_RENDER_BYTES:
            return render_states(self.types, states)
        return await self._reads.run(_render, list(states), cost=size)

    async def close(self) -> None:
        await self._writes.close()
        await self._reads.close()

    async def run(self, function: Callable[..., _Result], *arguments: Any) -> _Result:
        """`function(*arguments)` in the write lane's worker process, where `serialize_json_state` may be
        called (`app.api.bodies` parses large bodies there). The function goes by name, and what goes in
        and comes out is pickled: best bytes, or small."""
        cost = sum(len(argument) for argument in arguments if isinstance(argument, bytes | str))
        return await self._writes.run(function, *arguments, cost=cost)


def render_states(types: TypeRegistry, states: Sequence[tuple[str, bytes]]) -> list[Rendered]:
    """The states rendered in order until the next would pass MAX_ANSWER_VALUES (the first always is); a state
    that cannot be rendered is one with an `error`, so that it never fails the others."""
    rendered: list[Rendered] = []
    budget = MAX_ANSWER_VALUES
    for manifest, payload in states:
        limit = min(MAX_RENDERED_VALUES, budget)
        try:
            decoded = types.decode(manifest, payload, limit)
        except TooManyValues as refused:
            if limit < MAX_RENDERED_VALUES:
                break  # the answer, not the state, is at its limit: the next answer renders it
            budget -= limit  # what counting it took
            rendered.append(Rendered(None, unknown_fields=False, error=refused.detail))
            continue
        except InvalidState as unreadable:
            rendered.append(Rendered(None, unknown_fields=False, error=unreadable.detail))
            continue
        if decoded is None:
            rendered.append(Rendered(None, unknown_fields=False))
        else:
            budget -= decoded.values
            rendered.append(Rendered(json_bytes(decoded.state), decoded.unknown_fields))
    return rendered


# What runs in the worker process: one registry, loaded once, and the calls on it.

_worker_types: TypeRegistry | None = None


def _load_types(descriptor_sets: tuple[Path, ...]) -> None:
    global _worker_types
    # Ctrl-C in a terminal reaches the whole process group; the service stops its worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(os.getppid(),), name="exit-with-service", daemon=True).start()
    _worker_types = TypeRegistry.load(descriptor_sets)


def _exit_with(service: int) -> None:
    """A service killed outright (SIGKILL, the OOM killer) cannot stop its worker, which would wait for work
    for ever: the worker leaves once its parent is no longer the service."""
    while os.getppid() == service:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


def _types() -> TypeRegistry:
    if _worker_types is None:
        raise RuntimeError("the protobuf worker's registry is not loaded")
    return _worker_types


def serialize_json_state(manifest: str, state: Any) -> SerializedState:
    """In the worker process: a write's JSON state serialized, or why it is refused."""
    try:
        return SerializedState(_types().from_json(manifest, state))
    except InvalidState as refused:
        return SerializedState(None, refused.detail)


def _check_payload(manifest: str, payload: bytes, unknown_fields: UnknownFields) -> None:
    _types().check_payload(manifest, payload, unknown_fields)


def _from_json(manifest: str, state: Any) -> bytes:
    return _types().from_json(manifest, state)


def _render(states: list[tuple[str, bytes]]) -> list[Rendered]:
    return render_states(_types(), states)
