"""Translate what aiobotocore raises into the service's errors, at the adapter's boundary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from app.errors import BackendUnavailable, PayloadTooLarge, ProblemError, TableMissing
from app.store.observed import CallObserver, ObservedCall

logger = logging.getLogger("statestore.dynamodb")

# Error codes, and the codes of a transaction's cancellation reasons, that retrying later may cure.
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate_client_error(exc: ClientError, table: str, operation: str) -> ProblemError:
    error = exc.response.get("Error", {})
    return problem_for(error_code(exc), str(error.get("Message", "")), table, operation)


def problem_for(code: str, message: str, table: str, operation: str) -> ProblemError:
    """The problem for an error code, or for the code of a transaction's cancellation reason."""
    if code == "ResourceNotFoundException":
        return TableMissing(table)
    if code in _RETRYABLE:
        return BackendUnavailable(f"DynamoDB is throttling or busy ({code}); retry later", retry_after=1)
    if (
        code in ("ValidationException", "ValidationError")
        and "size" in message.lower()
        and "exceeded" in message.lower()
    ):
        return PayloadTooLarge("the state exceeds DynamoDB's item size limit")
    logger.error("DynamoDB refused %s on table %s: %s %s", operation, table, code, message)
    return BackendUnavailable(
        f"DynamoDB refused the {operation} call ({code or 'unknown error'})", retry_after=5
    )


class _DynamoDBCall(ObservedCall):
    __slots__ = ("_deadline", "_table")

    def __init__(self, observer: CallObserver, operation: str, table: str, deadline: float) -> None:
        super().__init__(observer, operation)
        self._table = table
        self._deadline = deadline

    def translate(self, error: Exception) -> Exception:
        operation = self._operation
        if isinstance(error, ClientError):
            return translate_client_error(error, self._table, operation)
        if isinstance(error, TimeoutError):
            return BackendUnavailable(
                f"DynamoDB cannot be reached or did not answer {operation} within {self._deadline:g} s"
            )
        if isinstance(error, NoCredentialsError):
            return BackendUnavailable("no AWS credentials are configured for DynamoDB", retry_after=30)
        if isinstance(error, BotoCoreError):
            logger.warning("DynamoDB %s failed: %s", operation, error)
            return BackendUnavailable(f"DynamoDB cannot be reached for {operation}")
        return error


@asynccontextmanager
async def dynamodb_call(
    table: str, operation: str, deadline: float, observer: CallObserver
) -> AsyncIterator[None]:
    """Bound one call (SDK retries included) by `deadline` seconds, translate its failures, report it."""
    with _DynamoDBCall(observer, operation, table, deadline):
        async with asyncio.timeout(deadline):
            yield
