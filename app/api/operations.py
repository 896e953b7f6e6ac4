"""A transaction request as store operations, validated whole before any backend call.

Puts go through the same validation as `PUT` (`record_to_write`) and get the same version guard;
then the transaction as a whole must fit DynamoDB's rules: each id at most once, and at most 4 MB of
items together. SQLite is held to the same limits, so a transaction that works on one backend works
on the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.api.persistence_ids import check_persistence_id
from app.api.schemas import TransactDelete, TransactPut
from app.api.writes import record_to_write, write_precondition
from app.errors import InvalidState, PayloadTooLarge, ProblemError
from app.protobuf import TypeRegistry
from app.settings import Settings
from app.store.item_size import MAX_TRANSACTION_BYTES, item_size
from app.store.port import DeleteOperation, Operation, Precondition, PutOperation


def operations_to_apply(
    requested: Sequence[TransactPut | TransactDelete], types: TypeRegistry, settings: Settings
) -> list[Operation]:
    _check_ids(requested)
    operations: list[Operation] = []
    for index, operation in enumerate(requested):
        if isinstance(operation, TransactDelete):
            operations.append(DeleteOperation(operation.persistence_id, _precondition(operation)))
            continue
        try:
            record = record_to_write(operation.persistence_id, operation, types, settings)
        except ProblemError as error:
            raise _within_operation(error, index).for_operation(index, operation.persistence_id) from None
        precondition = write_precondition(_precondition(operation), record, settings)
        operations.append(PutOperation(record, precondition))
    size = sum(item_size(operation.record) for operation in operations if isinstance(operation, PutOperation))
    if size > MAX_TRANSACTION_BYTES:
        raise PayloadTooLarge(
            f"the transaction's states would take {size} bytes as DynamoDB items;"
            f" the limit for one transaction is {MAX_TRANSACTION_BYTES}"
        )
    return operations


def _check_ids(requested: Sequence[TransactPut | TransactDelete]) -> None:
    first_use: dict[str, int] = {}
    for index, operation in enumerate(requested):
        loc: list[str | int] = ["body", "operations", index, "persistence_id"]
        check_persistence_id(operation.persistence_id, loc)
        earlier = first_use.setdefault(operation.persistence_id, index)
        if earlier != index:
            raise InvalidState(
                "a transaction may name each persistence id in one operation only",
                errors=[{"loc": loc, "msg": f"is already the persistence id of operation {earlier}"}],
            )


def _precondition(operation: TransactPut | TransactDelete) -> Precondition:
    match = None if operation.if_match is None else frozenset({operation.if_match})
    absent = isinstance(operation, TransactPut) and bool(operation.if_none_match)
    return Precondition(match=match, absent=absent)


def _within_operation(error: ProblemError, index: int) -> ProblemError:
    """PUT's field errors (`["body", "payload"]`) located in the transaction's body instead."""
    for field_error in error.extensions.get("errors", []):
        if field_error["loc"][:1] == ["body"]:
            field_error["loc"] = ["body", "operations", index, *field_error["loc"][1:]]
    return error
