"""The protobuf worker: the registry's costly work in a process of its own, with its bounds.

Each test talks to a real worker process, started as the service starts it.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
from google.protobuf import struct_pb2

from app._worker_lane import CALLER, MAX_CALLS_PER_CALLER, MAX_QUEUED_CALLS
from app.errors import InvalidState, WorkerUnavailable
from app.protobuf import MAX_RENDERED_VALUES, QUICK_CHECK_BYTES, TooManyValues, TypeRegistry
from app.protobuf_worker import (
    MAX_ANSWER_VALUES,
    QUICK_PARSE_VALUES,
    ProtobufWorker,
    Rendered,
)
from support.messages import ACCOUNT_STATE

_T = TypeVar("_T")
AT_THE_CAP = b"\x5a\x00" * MAX_RENDERED_VALUES  # that many empty ledger entries
STATES_PER_ANSWER = MAX_ANSWER_VALUES // MAX_RENDERED_VALUES
LONG_ID = b"\x0a\x80\x10" + b"a" * 2048  # an account id of 2,048 characters: too much to render in place


def started(descriptor_set: Path) -> ProtobufWorker:
    return ProtobufWorker(TypeRegistry.load([descriptor_set]), [descriptor_set])


@pytest.fixture(scope="module")
def worker(descriptor_set: Path) -> Iterator[ProtobufWorker]:
    worker = started(descriptor_set)
    yield worker
    asyncio.run(worker.close())


async def as_caller(caller: object, call: Awaitable[_T]) -> _T:
    """`call` counted to `caller`, as a request's conversions are to its connection or key."""
    CALLER.set(caller)
    return await call


def worker_processes() -> list[BaseProcess]:
    return [child for child in multiprocessing.active_children() if child.is_alive()]


class TestRender:
    @pytest.mark.parametrize("where", ["in-place", "in-the-worker"])
    async def test_renders_each_state_in_order(self, worker: ProtobufWorker, where: str) -> None:
        states = [
            (ACCOUNT_STATE, b"\x0a\x01a"),
            ("acme.orders.v1.OrderState", b"\x0a\x01b"),
            (ACCOUNT_STATE, b""),
        ]
        large = [(ACCOUNT_STATE, LONG_ID)] if where == "in-the-worker" else []

        rendered = await worker.render(states + large)

        assert rendered[:3] == [
            Rendered(b'{"accountId":"a"}', unknown_fields=False),
            Rendered(None, unknown_fields=False),  # a type the registry does not know
            Rendered(b"{}", unknown_fields=False),
        ]
        assert len(rendered) == len(states + large)

    async def test_says_when_the_payload_held_fields_its_type_does_not_define(
        self, worker: ProtobufWorker
    ) -> None:
        (rendered,) = await worker.render([(ACCOUNT_STATE, b"\x0a\x01a\x98\x06\x01")])
        assert rendered == Rendered(b'{"accountId":"a"}', unknown_fields=True)

    async def test_stops_where_one_answer_must(self, worker: ProtobufWorker) -> None:
        """States at the cap: the answer holds as many as its budget, the rest are the caller's to defer."""
        states = [(ACCOUNT_STATE, AT_THE_CAP)] * (STATES_PER_ANSWER + 2)

        rendered = await worker.render(states)

        assert len(rendered) == STATES_PER_ANSWER
        assert all(
            len(orjson.loads(one.json or b"")["recentEntries"]) == MAX_RENDERED_VALUES for one in rendered
        )

    async def test_renders_a_first_state_whatever_the_budget_left(self, worker: ProtobufWorker) -> None:
        (rendered,) = await worker.render([(ACCOUNT_STATE, AT_THE_CAP)])
        assert rendered.json is not None

    async def test_says_why_a_state_over_the_cap_is_not_rendered(self, worker: ProtobufWorker) -> None:
        over = (ACCOUNT_STATE, AT_THE_CAP + b"\x5a\x00")

        rendered = await worker.render([over, (ACCOUNT_STATE, b"\x0a\x01a"), over])

        assert [one.json for one in rendered] == [None, b'{"accountId":"a"}', None]
        assert rendered[0].error is not None
        assert "read its payload instead" in rendered[0].error
        assert rendered[2] == rendered[0]

    async def test_says_why_a_stored_payload_that_does_not_parse_is_not_rendered(
        self, worker: ProtobufWorker
    ) -> None:
        rendered = await worker.render([(ACCOUNT_STATE, b"\x0a\x05a"), (ACCOUNT_STATE, LONG_ID)])

        assert rendered[0].json is None
        assert rendered[0].error is not None
        assert f"not a valid {ACCOUNT_STATE}" in rendered[0].error
        assert rendered[1].json is not None

    async def test_says_why_a_state_without_a_json_form_is_not_rendered(self, worker: ProtobufWorker) -> None:
        """A Value holding infinity, as a Go writer may store it: JSON has no number for it."""
        infinite = struct_pb2.Value(number_value=math.inf).SerializeToString()

        (rendered,) = await worker.render([("google.protobuf.Value", infinite)])

        assert rendered.json is None
        assert rendered.error is not None
        assert "no JSON form" in rendered.error

    async def test_answers_nothing_for_no_states(self, worker: ProtobufWorker) -> None:
        assert await worker.render([]) == []


class TestFromJson:
    async def test_serializes_exactly_what_was_parsed(self, worker: ProtobufWorker) -> None:
        """The state reaches the worker as the Python values the body parsed to: JSON numbers of 2^70, which a
        double takes, survive the trip (orjson, for one, cannot write them)."""
        numbers = [2**70] * (QUICK_PARSE_VALUES + 1)

        payload = await worker.from_json("google.protobuf.ListValue", numbers)

        expected = struct_pb2.ListValue(values=[struct_pb2.Value(number_value=2.0**70)] * len(numbers))
        assert payload == expected.SerializeToString()

    async def test_refuses_a_state_that_does_not_fit_naming_the_field(self, worker: ProtobufWorker) -> None:
        with pytest.raises(InvalidState, match="revision"):
            await worker.from_json(ACCOUNT_STATE, {"revision": "-1"})

    async def test_refuses_too_many_values_before_the_trip(self, worker: ProtobufWorker) -> None:
        with pytest.raises(TooManyValues):
            await worker.from_json(ACCOUNT_STATE, {"recentEntries": [{}] * MAX_RENDERED_VALUES})


class TestCheckPayload:
    @pytest.mark.parametrize("entries", [8, QUICK_CHECK_BYTES], ids=["in-place", "in-the-worker"])
    async def test_refuses_a_payload_that_does_not_parse(self, worker: ProtobufWorker, entries: int) -> None:
        truncated = b"\x5a\x00" * entries + b"\x0a\x05a"
        with pytest.raises(InvalidState, match=f"payload is not a valid {ACCOUNT_STATE}"):
            await worker.check_payload(ACCOUNT_STATE, truncated, "keep")

    async def test_refuses_unknown_fields_when_told_to(self, worker: ProtobufWorker) -> None:
        with pytest.raises(InvalidState, match="does not define"):
            await worker.check_payload(
                ACCOUNT_STATE, b"\x5a\x00" * QUICK_CHECK_BYTES + b"\x98\x06\x01", "reject"
            )


class TestBounds:
    async def test_refuses_a_callers_call_beyond_its_share_and_serves_the_others(
        self, worker: ProtobufWorker
    ) -> None:
        calls = MAX_CALLS_PER_CALLER + 3
        looping = [as_caller("looping", worker.render([(ACCOUNT_STATE, AT_THE_CAP)])) for _ in range(calls)]
        other = as_caller("other", worker.render([(ACCOUNT_STATE, AT_THE_CAP)]))

        *answers, others = await asyncio.gather(*looping, other, return_exceptions=True)

        refused = [answer for answer in answers if isinstance(answer, BaseException)]
        assert len(refused) == calls - 1 - MAX_CALLS_PER_CALLER  # one runs, its share waits
        assert isinstance(refused[0], WorkerUnavailable)
        assert refused[0].headers == {"Retry-After": "1"}
        assert "of this client" in refused[0].detail
        assert isinstance(others, list)

    async def test_refuses_a_call_beyond_those_that_may_wait(self, worker: ProtobufWorker) -> None:
        calls = [as_caller(n, worker.render([(ACCOUNT_STATE, LONG_ID)])) for n in range(MAX_QUEUED_CALLS + 2)]

        answers = await asyncio.gather(*calls, return_exceptions=True)

        refused = [answer for answer in answers if isinstance(answer, BaseException)]
        assert len(refused) == 1  # one runs, MAX_QUEUED_CALLS wait
        assert isinstance(refused[0], WorkerUnavailable)
        assert f"{MAX_QUEUED_CALLS} protobuf conversions" in refused[0].detail

    async def test_callers_take_turns(self, worker: ProtobufWorker) -> None:
        """A caller with many calls waiting delays another by one or two of its own, not by all of them."""
        finished: list[str] = []

        async def render(caller: str) -> None:
            await as_caller(caller, worker.render([(ACCOUNT_STATE, AT_THE_CAP)]))
            finished.append(caller)

        looping = [asyncio.create_task(render("looping")) for _ in range(6)]
        await asyncio.sleep(0)  # the looping caller's calls are queued first
        other = asyncio.create_task(render("other"))
        await asyncio.gather(*looping, other)

        assert finished.index("other") <= 2, finished  # after the running call and one more at most

    async def test_a_write_never_waits_behind_reads(self, worker: ProtobufWorker) -> None:
        """Checking a payload runs in a lane of its own: it is done while the renders still wait."""
        large = b"\x5a\x00" * (QUICK_CHECK_BYTES // 2 + 1)
        await worker.check_payload(ACCOUNT_STATE, large, "keep")  # both lanes' processes are running
        await worker.render([(ACCOUNT_STATE, LONG_ID)])
        renders = [
            asyncio.create_task(as_caller(n, worker.render([(ACCOUNT_STATE, AT_THE_CAP)]))) for n in range(8)
        ]
        await asyncio.sleep(0)

        await worker.check_payload(ACCOUNT_STATE, large, "keep")

        assert sum(render.done() for render in renders) <= 1
        await asyncio.gather(*renders)

    async def test_a_worker_that_dies_is_replaced_for_the_next_call(self, descriptor_set: Path) -> None:
        before = {child.pid for child in worker_processes()}
        worker = started(descriptor_set)
        try:
            assert len(await worker.render([(ACCOUNT_STATE, LONG_ID)])) == 1
            (process,) = [child for child in worker_processes() if child.pid not in before]
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
            process.join(timeout=30)

            assert len(await worker.render([(ACCOUNT_STATE, AT_THE_CAP)])) == 1
        finally:
            await worker.close()

    async def test_a_call_that_two_workers_die_under_is_refused_and_the_next_is_served(
        self, descriptor_set: Path
    ) -> None:
        worker = started(descriptor_set)
        try:
            with pytest.raises(WorkerUnavailable, match="stopped under this call") as refused:
                await worker.run(os._exit, 1)

            assert refused.value.headers == {"Retry-After": "1"}
            assert len(await worker.render([(ACCOUNT_STATE, LONG_ID)])) == 1
        finally:
            await worker.close()

    async def test_starts_on_first_use_and_stops_on_close(self, descriptor_set: Path) -> None:
        before = {child.pid for child in worker_processes()}
        worker = started(descriptor_set)
        assert {child.pid for child in worker_processes()} == before

        await worker.render([(ACCOUNT_STATE, LONG_ID)])
        (own,) = [child for child in worker_processes() if child.pid not in before]
        await worker.close()

        assert not own.is_alive()

    async def test_does_quick_work_in_place(self, descriptor_set: Path) -> None:
        before = {child.pid for child in worker_processes()}
        worker = started(descriptor_set)
        try:
            await worker.render([(ACCOUNT_STATE, b"\x5a\x00" * 500)])
            await worker.from_json(ACCOUNT_STATE, {"recentEntries": [{}] * 254})
            await worker.check_payload("google.protobuf.BytesValue", b"\x0a\x80\x10" + bytes(2048), "keep")

            assert {child.pid for child in worker_processes()} == before
        finally:
            await worker.close()
