"""How much of the stored states one answer may carry: the 16 MiB of a DynamoDB BatchGetItem answer.

A batchGet answer is filled state by state, each counted as DynamoDB counts its item (`item_size`). The
first state that does not fit closes the answer: it and every id not read yet go back to the client as
`unprocessed`, for it to ask again, so that a batchGet never makes the service hold more than about one
answer's worth of states, however many ids it names and however large their states.

Across requests, `HeldAnswers` bounds the states a process holds for answers it has not sent yet: a client
that reads its answers slowly, or never, holds them until it does (or the send timeout closes it). An
answer takes what room is left, its other states going back as `unprocessed`, and without room for one
state the batchGet is a `503`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.errors import AnswersUnsent
from app.states.model import MAX_ITEM_BYTES, StateRecord, item_size

MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_HELD_ANSWER_BYTES = 8 * MAX_ANSWER_BYTES


@dataclass(frozen=True, slots=True)
class BatchRead:
    """The states read for some ids (ids with none stored are left out) and the ids not read at all."""

    found: list[StateRecord]
    unprocessed: list[str]


@dataclass(slots=True)
class AnswerBudget:
    """The bytes an answer may still take; `largest` is the largest state seen, to size the next reads."""

    left: int = MAX_ANSWER_BYTES
    largest: int = 0
    full: bool = False
    found: list[StateRecord] = field(default_factory=list)

    def admit(self, record: StateRecord, size: int | None = None) -> bool:
        """Add the record to the answer, unless it no longer fits (the answer is then full); `size`, when
        given, is what its state takes in the answer (a payload still to be read from S3 included)."""
        size = item_size(record) if size is None else size
        self.largest = max(self.largest, size)
        if self.full or size > self.left:
            self.full = True
            return False
        self.left -= size
        self.found.append(record)
        return True

    def answer(self, requested: Sequence[str], unread: Iterable[str]) -> BatchRead:
        """The answer for `requested`; `unread` (ids not asked, or left by the backend) are unprocessed."""
        unprocessed = set(unread)
        return BatchRead(self.found, [i for i in requested if i in unprocessed])


class HeldAnswers:
    """The states (counted as `item_size` counts them) that a process holds for answers not sent yet."""

    def __init__(self, limit: int = MAX_HELD_ANSWER_BYTES) -> None:
        self.limit = limit
        self.held = 0

    def check_room(self) -> None:
        """A `503` before anything is read, when the held answers leave no room for one more state."""
        if self.limit - self.held < MAX_ITEM_BYTES:
            raise self._full()

    def hold(self, records: Sequence[StateRecord]) -> Holding:
        """Hold the first records that fit in the room left (the caller answers the others as not read),
        or a `503` when not even the first fits."""
        room = self.limit - self.held
        sizes: deque[int] = deque()
        for record in records:
            size = item_size(record)
            if size > room:
                break
            room -= size
            sizes.append(size)
        if records and not sizes:
            raise self._full()
        self.held += sum(sizes)
        return Holding(self, sizes)

    def _full(self) -> AnswersUnsent:
        held = self.held // 2**20
        return AnswersUnsent(f"answers not taken by their clients yet hold {held} MiB of states; retry later")


@dataclass(slots=True)
class Holding:
    """One answer's states in `HeldAnswers`, each given back as it is sent (or all, once the answer ends)."""

    answers: HeldAnswers
    sizes: deque[int]

    def __len__(self) -> int:
        return len(self.sizes)

    def keep(self, count: int) -> None:
        """Give back the states after the first `count`, which the answer leaves out after all."""
        while len(self.sizes) > count:
            self.answers.held -= self.sizes.pop()

    def release_next(self) -> None:
        self.answers.held -= self.sizes.popleft()

    def release(self) -> None:
        self.answers.held -= sum(self.sizes)
        self.sizes.clear()
