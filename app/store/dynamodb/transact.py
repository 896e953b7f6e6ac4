"""TransactWriteItems for a transaction's operations, and what its cancellation reasons mean.

A cancelled transaction tells, per item, why: `ConditionalCheckFailed` comes with the stored item
(`ReturnValuesOnConditionCheckFailure=ALL_OLD`), which `settle_refused` needs to tell a retry from a
412/409 without a second read. When the refused operations are all already done, the next attempt
turns each into a `ConditionCheck` pinned to what it found, so the operations still to write are
applied together with the proof that the others hold.

No `ClientRequestToken` of ours is sent: botocore fills in a random one per call and reuses it for
its own retries, so a call retried after a timeout cannot apply twice; one derived from the request
would swallow a deliberate repeat for 10 minutes (docs/batch.md, "Retries and idempotency").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import ProblemError
from app.states.model import Operation, PutOperation, Settled, StateRecord, present, settle_refused
from app.store.dynamodb.codec import condition_arguments, from_item, key_of, pin_arguments
from app.store.dynamodb.errors import problem_for

OPERATION = "TransactWriteItems"


def transact_items(
    table: str,
    operations: Sequence[Operation],
    settled: Mapping[int, StateRecord | None],
    now: int,
    put_items: Mapping[int, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The call's items; `put_items` are the puts' items in their stored form, by operation."""
    items: list[dict[str, Any]] = []
    for index, operation in enumerate(operations):
        key = key_of(operation.persistence_id)
        if index in settled:
            items.append(
                {"ConditionCheck": {"TableName": table, "Key": key, **pin_arguments(settled[index], now)}}
            )
        elif isinstance(operation, PutOperation):
            condition = condition_arguments(operation.precondition, now)
            items.append({"Put": {"TableName": table, "Item": put_items[index], **condition}})
        else:
            condition = condition_arguments(operation.precondition, now)
            items.append({"Delete": {"TableName": table, "Key": key, **condition}})
    return items


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Why an attempt was cancelled: what each refused operation found, and the other problems.

    `came_with_items` tells whether any refusal came with the stored item: an endpoint that ignores
    ALL_OLD (dynalite) sends none, and then what each refused operation found must be read (`finding`).
    """

    refused: dict[int, StateRecord | None]
    problems: list[ProblemError]
    came_with_items: bool = False

    def finding(self, found: Mapping[int, StateRecord | None]) -> Cancellation:
        """The same cancellation, the refused operations having found `found`, read after it."""
        return Cancellation({i: found.get(i) for i in self.refused}, self.problems, self.came_with_items)


def cancellation(
    table: str, operations: Sequence[Operation], reasons: Sequence[Mapping[str, Any]], now: int
) -> Cancellation:
    """The cancellation reasons read at `now`: a refused operation that found an expired state found none."""
    refused: dict[int, StateRecord | None] = {}
    problems: list[ProblemError] = []
    came_with_items = False
    for index, reason in enumerate(reasons):
        code = str(reason.get("Code") or "None")
        if code == "ConditionalCheckFailed":
            item = reason.get("Item")
            came_with_items = came_with_items or item is not None
            refused[index] = None if item is None else present(from_item(item), now)
        elif code != "None":
            problem = problem_for(code, str(reason.get("Message", "")), table, OPERATION)
            problems.append(problem.for_operation(index, operations[index].persistence_id))
    return Cancellation(refused, problems, came_with_items)


def settle_cancellation(
    table: str,
    operations: Sequence[Operation],
    cancelled: Cancellation,
    settled_before: Mapping[int, StateRecord | None],
    unrefused_puts: Mapping[int, StateRecord | None],
) -> Settled:
    """The operations already done after a cancelled attempt, or the error that ends the transaction."""
    settled = settle_refused(operations, cancelled.refused, settled_before, unrefused_puts)
    if cancelled.problems:
        raise cancelled.problems[0]
    if not cancelled.refused:
        raise problem_for("TransactionCanceledException", "no cancellation reason given", table, OPERATION)
    return settled
