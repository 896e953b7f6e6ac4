"""What a transaction whose conditions failed comes to: operations already done, or the one to refuse.

The rule for a single write (one that finds exactly its own state stored succeeds, so a retry after a
lost response is harmless) carries over to each operation of a transaction:

- a put whose condition fails but which finds its own state stored (version, manifest and payload)
  is already done;
- a conditional delete that finds nothing stored is already done only when a put of the same
  transaction is already done: that put is the sign of a retry of this very transaction. Without
  it, the delete is refused as `DELETE` with `If-Match` on a missing state is (412), since a missing
  state proves nothing about the version the client expected;
- any other refused operation fails the whole transaction: 412 for its `if_match`/`if_none_match`,
  409 for the version guard, naming the lowest-numbered failing operation.

Adapters then apply the transaction with the operations already done pinned to what they found, in
the same atomic step, so "applied" always describes one instant at which every outcome held at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.store.port import Operation, PutOperation, StateRecord, refusal

Settled = dict[int, StateRecord | None]
"""Operations already done, by index, with what each found stored (None: nothing, for a delete)."""


def refused_operations(
    operations: Sequence[Operation], stored: Mapping[str, StateRecord]
) -> dict[int, StateRecord | None]:
    """The operations whose condition fails against `stored`, with what each finds."""
    refused: dict[int, StateRecord | None] = {}
    for index, operation in enumerate(operations):
        found = stored.get(operation.persistence_id)
        if not operation.precondition.allows_state(found):
            refused[index] = found
    return refused


def settle_refused(
    operations: Sequence[Operation],
    refused: Mapping[int, StateRecord | None],
    settled_before: Mapping[int, StateRecord | None] | None = None,
) -> Settled:
    """The operations already done, or the 412/409 of the first one that fails.

    `refused` holds what is stored for each operation the backend refused: its condition failed, or,
    for one found done by an earlier attempt (`settled_before`), the pin on what it found failed.
    """
    settled = {i: found for i, found in (settled_before or {}).items() if i not in refused}
    failed: list[int] = []
    deletes_of_nothing: list[int] = []
    for index, found in refused.items():
        operation = operations[index]
        if operation.precondition.allows_state(found):
            continue  # its own condition holds again: it is written rather than pinned
        if isinstance(operation, PutOperation):
            if found is not None and found.same_state_as(operation.record):
                settled[index] = found
            else:
                failed.append(index)
        elif found is None:
            deletes_of_nothing.append(index)
        else:
            failed.append(index)
    if any(isinstance(operations[index], PutOperation) for index in settled):
        settled.update(dict.fromkeys(deletes_of_nothing))
    else:
        failed.extend(deletes_of_nothing)
    if failed:
        first = min(failed)
        operation = operations[first]
        raise refusal(operation.precondition, refused[first]).for_operation(first, operation.persistence_id)
    return settled


def transaction_results(operations: Sequence[Operation], settled: Settled) -> list[StateRecord | None]:
    """What each operation left stored: a put's record (or the state it found), None for a delete."""
    return [
        settled.get(index, operation.record) if isinstance(operation, PutOperation) else None
        for index, operation in enumerate(operations)
    ]
