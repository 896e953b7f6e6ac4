"""Drives a live service through the client that openapi-python-client generates from openapi/openapi.json
(the package `statestore_client`, on PYTHONPATH), and checks every 64-bit value exactly. Every write
carries an Idempotency-Key of its own, and a write and a transaction are retried with theirs.

Usage: python conformance.py BASE_URL API_KEY ID_PREFIX
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Mapping
from typing import TypeVar

from statestore_client.api.states import (
    batch_get_states,
    delete_state,
    get_state,
    head_state,
    list_states,
    put_state,
    transact_states,
)
from statestore_client.client import AuthenticatedClient
from statestore_client.models import (
    BatchGetRequest,
    BatchGetResponse,
    ListedState,
    Problem,
    PutStateRequest,
    State,
    StatePage,
    StateWritten,
    TransactDelete,
    TransactPut,
    TransactRequest,
    TransactResponse,
)
from statestore_client.types import UNSET, Response

MAX_UINT64 = 2**64 - 1
ABOVE_DOUBLE = 2**53 + 1  # the first integer a JSON number in JavaScript rounds
EGO_NANOS = 1764115200123456789  # eGo >= 4.2 writes nanoseconds
GO_ZERO_TIME = -62135596800  # an eGo actor stopped before any command
SHARD = 3
LISTED_SHARD = ABOVE_DOUBLE  # only the listing step's states are in this shard: above 2^53
LISTING_PAGE = 2  # a page smaller than the states listed, so that the walk follows next_page_token
MANIFEST = "google.protobuf.StringValue"
PAYLOAD = "CgJoaQ=="  # StringValue{value: "hi"}

Parsed = TypeVar("Parsed")
Answer = TypeVar("Answer")


class Mismatch(Exception):
    pass


def expect_same(what: str, got: object, want: object) -> None:
    if got != want:
        raise Mismatch(f"{what}: want {want!r}, got {got!r}")


def expect_64(what: str, got: object, want: int) -> None:
    """A 64-bit field arrives as a decimal string holding exactly the value."""
    expect_same(f"{what} (as a decimal string)", got, str(want))


def expect_same_fields(what: str, got: Mapping[str, object], want: Mapping[str, object]) -> None:
    """Two answers, field by field, so that the first value that differs is named."""
    for name in {**want, **got}:
        expect_same(f"{what} {name}", got.get(name), want.get(name))


def expect_parsed(what: str, response: Response[Answer], kind: type[Parsed]) -> Parsed:
    if not isinstance(response.parsed, kind):
        raise Mismatch(f"{what}: status {response.status_code}, {response.content!r}")
    return response.parsed


def expect_numbers(
    what: str, got: State | StateWritten | ListedState, version: int, timestamp: int, shard: int = SHARD
) -> None:
    expect_64(f"{what} version_number", got.version_number, version)
    expect_64(f"{what} timestamp", got.timestamp, timestamp)
    expect_64(f"{what} shard", got.shard, shard)
    expect_same(f"{what} manifest", got.manifest, MANIFEST)


def quoted(version: int) -> str:
    return f'"{version}"'


def new_key() -> str:
    """A new Idempotency-Key, a Structured Field string: one per write, the same on each of its retries."""
    return f'"{uuid.uuid4()}"'


class Conformance:
    def __init__(self, base_url: str, api_key: str, prefix: str) -> None:
        self.client = AuthenticatedClient(base_url=base_url, token=api_key)
        self.id = f"{prefix}/order 42|é:1"
        self.other_id = f"{prefix}/order 43"
        self.missing_id = f"{prefix}/never written"
        self.prefix = prefix
        self.waited_id = f"{prefix}/waited on"

    def read(self, what: str, persistence_id: str, version: int, timestamp: int) -> None:
        response = get_state.sync_detailed(persistence_id, client=self.client)
        state = expect_parsed(what, response, State)
        expect_numbers(what, state, version, timestamp)
        expect_same(f"{what} payload", state.payload, PAYLOAD)
        expect_same(f"{what} persistence_id", state.persistence_id, persistence_id)
        expect_same(f"{what} ETag", response.headers.get("etag"), quoted(version))

    def expect_absent(self, what: str, persistence_id: str) -> None:
        response = get_state.sync_detailed(persistence_id, client=self.client)
        expect_same(f"{what} status", response.status_code, 404)

    def create(self, what: str, body: PutStateRequest, key: str) -> StateWritten:
        """The write where no state is (If-None-Match: *) of the state `self.id`."""
        response = put_state.sync_detailed(
            self.id, client=self.client, body=body, if_none_match="*", idempotency_key=key
        )
        expect_same(f"{what} status", response.status_code, 201)
        written = expect_parsed(what, response, StateWritten)
        expect_numbers(what, written, ABOVE_DOUBLE, EGO_NANOS)
        expect_same(f"{what} ETag", response.headers.get("etag"), quoted(ABOVE_DOUBLE))
        return written

    def write(self) -> None:
        body = PutStateRequest(
            manifest=MANIFEST, payload=PAYLOAD, version_number=ABOVE_DOUBLE, timestamp=EGO_NANOS, shard=SHARD
        )
        key = new_key()
        first = self.create("write", body, key)
        # As after a lost answer: the retry's condition fails, but it finds its own write stored.
        retried = self.create("write retried with its key", body, key)
        expect_same_fields("write retried with its key:", retried.to_dict(), first.to_dict())
        again = put_state.sync_detailed(
            self.id, client=self.client, body=body, if_none_match="*", idempotency_key=new_key()
        )
        problem = expect_parsed("write sent again with a new key", again, Problem)
        expect_same("write sent again with a new key: status", problem.status, 412)
        expect_64("write sent again with a new key: current_version", problem.current_version, ABOVE_DOUBLE)

    def read_and_head(self) -> None:
        self.read("read", self.id, ABOVE_DOUBLE, EGO_NANOS)
        head = head_state.sync_detailed(self.id, client=self.client)
        expect_same("head status", head.status_code, 200)
        expect_same("head ETag", head.headers.get("etag"), quoted(ABOVE_DOUBLE))

    def compare_and_set(self) -> None:
        # The string form of each number, as a client holding the text would send it.
        body = PutStateRequest(
            manifest=MANIFEST,
            payload=PAYLOAD,
            version_number=str(MAX_UINT64),
            timestamp=str(GO_ZERO_TIME),
            shard=str(SHARD),
        )
        response = put_state.sync_detailed(
            self.id, client=self.client, body=body, if_match=quoted(ABOVE_DOUBLE), idempotency_key=new_key()
        )
        expect_same("compare-and-set status", response.status_code, 200)
        written = expect_parsed("compare-and-set", response, StateWritten)
        expect_numbers("compare-and-set", written, MAX_UINT64, GO_ZERO_TIME)
        self.read("read after compare-and-set", self.id, MAX_UINT64, GO_ZERO_TIME)

    def stale_compare_and_set(self) -> None:
        body = PutStateRequest(manifest=MANIFEST, payload=PAYLOAD, version_number=1)
        response = put_state.sync_detailed(
            self.id, client=self.client, body=body, if_match=quoted(ABOVE_DOUBLE), idempotency_key=new_key()
        )
        problem = expect_parsed("stale compare-and-set", response, Problem)
        expect_same("stale compare-and-set status", problem.status, 412)
        expect_64("stale compare-and-set current_version", problem.current_version, MAX_UINT64)

    def batch_get(self) -> None:
        states: list[State] = []
        missing: list[str] = []
        ask = [self.id, self.missing_id]
        while ask:
            response = batch_get_states.sync_detailed(
                client=self.client, body=BatchGetRequest(persistence_ids=ask)
            )
            answer = expect_parsed("batchGet", response, BatchGetResponse)
            states += answer.states
            missing += answer.missing
            ask = answer.unprocessed
        expect_same("batchGet number of states", len(states), 1)
        expect_numbers("batchGet", states[0], MAX_UINT64, GO_ZERO_TIME)
        expect_same("batchGet missing", missing, [self.missing_id])

    def transaction(self) -> None:
        put = TransactPut(
            op="put",
            persistence_id=self.other_id,
            manifest=MANIFEST,
            payload=PAYLOAD,
            version_number=ABOVE_DOUBLE,
            timestamp=EGO_NANOS,
            shard=SHARD,
            if_none_match=True,
        )
        delete = TransactDelete(op="delete", persistence_id=self.id, if_match=MAX_UINT64)
        request, key = TransactRequest(operations=[put, delete]), new_key()
        response = transact_states.sync_detailed(client=self.client, body=request, idempotency_key=key)
        first = expect_parsed("transaction", response, TransactResponse).results
        put_result, delete_result = first
        expect_same("transaction put persistence_id", put_result.persistence_id, self.other_id)
        expect_64("transaction put version_number", put_result.version_number, ABOVE_DOUBLE)
        expect_same("transaction put etag", put_result.etag, quoted(ABOVE_DOUBLE))
        expect_same("transaction delete persistence_id", delete_result.persistence_id, self.id)
        # Both conditions now fail; the retry finds its put stored with its key, so its delete is done too.
        response = transact_states.sync_detailed(client=self.client, body=request, idempotency_key=key)
        retried = expect_parsed("transaction retried with its key", response, TransactResponse).results
        expect_same("transaction retried with its key: number of results", len(retried), len(first))
        for index, (got, want) in enumerate(zip(retried, first, strict=True)):
            expect_same_fields(
                f"transaction retried with its key: result {index}", got.to_dict(), want.to_dict()
            )
        response = transact_states.sync_detailed(client=self.client, body=request, idempotency_key=new_key())
        problem = expect_parsed("transaction sent again with a new key", response, Problem)
        expect_same("transaction sent again with a new key: status", problem.status, 412)
        expect_same("transaction sent again with a new key: operation_index", problem.operation_index, 0)
        expect_64(
            "transaction sent again with a new key: current_version", problem.current_version, ABOVE_DOUBLE
        )
        self.read("read after transaction", self.other_id, ABOVE_DOUBLE, EGO_NANOS)
        self.expect_absent("read of the state the transaction deleted", self.id)

    def delete(self) -> None:
        stale = delete_state.sync_detailed(self.other_id, client=self.client, if_match=quoted(1))
        expect_same("stale delete status", stale.status_code, 412)
        response = delete_state.sync_detailed(
            self.other_id, client=self.client, if_match=quoted(ABOVE_DOUBLE)
        )
        expect_same("delete status", response.status_code, 204)
        self.expect_absent("read after delete", self.other_id)

    def listing(self) -> None:
        listed_ids = sorted(f"{self.prefix}/listed {n}" for n in range(3))
        body = PutStateRequest(
            manifest=MANIFEST,
            payload=PAYLOAD,
            version_number=MAX_UINT64,
            timestamp=EGO_NANOS,
            shard=LISTED_SHARD,
        )
        for persistence_id in listed_ids:
            response = put_state.sync_detailed(
                persistence_id, client=self.client, body=body, if_none_match="*", idempotency_key=new_key()
            )
            expect_same(f"listing: write of {persistence_id!r} status", response.status_code, 201)
        found: list[ListedState] = []
        pages = 0
        page_token: str | None = None
        while pages == 0 or page_token is not None:
            answer = list_states.sync_detailed(
                client=self.client,
                limit=LISTING_PAGE,
                shard=str(LISTED_SHARD),
                page_token=page_token or UNSET,
            )
            page = expect_parsed(f"listing page {pages + 1}", answer, StatePage)
            found += page.states
            page_token = page.next_page_token
            pages += 1
        for state in found:  # the shard filter holds for every state, other programs' too
            expect_64(f"listing {state.persistence_id!r} shard", state.shard, LISTED_SHARD)
        ours = sorted(
            (state for state in found if state.persistence_id.startswith(f"{self.prefix}/")),
            key=lambda state: state.persistence_id,
        )
        expect_same("listing ids", [state.persistence_id for state in ours], listed_ids)
        for state in ours:
            expect_numbers(f"listing {state.persistence_id!r}", state, MAX_UINT64, EGO_NANOS, LISTED_SHARD)
        if pages < 2:
            raise Mismatch(
                f"listing: one page of {len(found)} states, want more pages of at most {LISTING_PAGE}"
            )

    def wait(self) -> None:
        body = PutStateRequest(
            manifest=MANIFEST, payload=PAYLOAD, version_number=ABOVE_DOUBLE, timestamp=EGO_NANOS, shard=SHARD
        )
        response = put_state.sync_detailed(
            self.waited_id, client=self.client, body=body, if_none_match="*", idempotency_key=new_key()
        )
        expect_same("wait: first write status", response.status_code, 201)
        unchanged = get_state.sync_detailed(
            self.waited_id, client=self.client, wait=2, if_none_match=quoted(ABOVE_DOUBLE)
        )
        expect_same("wait on a state nobody writes: status", unchanged.status_code, 304)
        body.version_number = MAX_UINT64
        response = put_state.sync_detailed(
            self.waited_id,
            client=self.client,
            body=body,
            if_match=quoted(ABOVE_DOUBLE),
            idempotency_key=new_key(),
        )
        expect_same("wait: second write status", response.status_code, 200)
        changed = get_state.sync_detailed(
            self.waited_id, client=self.client, wait=2, if_none_match=quoted(ABOVE_DOUBLE)
        )
        expect_numbers(
            "wait with the old version",
            expect_parsed("wait with the old version", changed, State),
            MAX_UINT64,
            EGO_NANOS,
        )
        expect_same("wait with the old version: ETag", changed.headers.get("etag"), quoted(MAX_UINT64))

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("write", self.write),
            ("read", self.read_and_head),
            ("compare-and-set", self.compare_and_set),
            ("stale compare-and-set", self.stale_compare_and_set),
            ("batchGet", self.batch_get),
            ("transaction", self.transaction),
            ("delete", self.delete),
            ("listing", self.listing),
            ("wait", self.wait),
        ]


def main(base_url: str, api_key: str, prefix: str) -> int:
    conformance = Conformance(base_url, api_key, prefix)
    with conformance.client:
        for name, step in conformance.steps():
            try:
                step()
            except Mismatch as failure:
                print(f"step {name} failed: {failure}", file=sys.stderr)
                return 1
            print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
