"""How much of the stored states one answer may carry: the 16 MiB of a DynamoDB BatchGetItem answer.

A batchGet answer is filled state by state, each counted as DynamoDB counts its item (`item_size`). The
first state that does not fit closes the answer: it and every id not read yet go back to the client as
`unprocessed`, for it to ask again, so that a batchGet never makes the service hold more than about one
answer's worth of states, however many ids it names and however large their states.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.states.model import StateRecord, item_size

MAX_ANSWER_BYTES = 16 * 1024 * 1024


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
