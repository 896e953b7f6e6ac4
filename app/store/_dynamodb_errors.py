"""Translate what aiobotocore raises into the service's errors, at the adapter's boundary."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from app.errors import BackendUnavailable, PayloadTooLarge, ProblemError, TableMissing
from app.store.observed import CallObserver, observed

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


@asynccontextmanager
async def dynamodb_call(
    table: str, operation: str, deadline: float, observer: CallObserver
) -> AsyncIterator[None]:
    """Bound one call (SDK retries included) by `deadline` seconds, translate its failures, report it."""
    async with observed(observer, operation):
        try:
            async with asyncio.timeout(deadline):
                yield
        except ClientError as exc:
            raise translate_client_error(exc, table, operation) from exc
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"DynamoDB cannot be reached or did not answer {operation} within {deadline:g} s"
            ) from exc
        except NoCredentialsError as exc:
            raise BackendUnavailable(
                "no AWS credentials are configured for DynamoDB", retry_after=30
            ) from exc
        except BotoCoreError as exc:
            logger.warning("DynamoDB %s failed: %s", operation, exc)
            raise BackendUnavailable(f"DynamoDB cannot be reached for {operation}") from exc
