"""The one place where what aiobotocore raises becomes the service's errors, as httpx's
`map_httpcore_exceptions` does for httpcore: every DynamoDB call runs inside `map_dynamodb_errors`, and a
transaction's cancellation reasons go through the same `problem_for`; every S3 call (offloaded states,
`_offload.py`) inside `map_s3_errors`."""

from __future__ import annotations

import logging
from types import TracebackType

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from app.errors import BackendUnavailable, PayloadTooLarge, ProblemError, TableMissing

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


def retry_may_cure(exc: ClientError) -> bool:
    """Throttled or busy: an error `problem_for` answers with a 503 that says to retry soon."""
    return error_code(exc) in _RETRYABLE


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


def _problem_for_exception(error: Exception, table: str, operation: str, deadline: float) -> Exception:
    if isinstance(error, ClientError):
        return problem_for(
            error_code(error), str(error.response.get("Error", {}).get("Message", "")), table, operation
        )
    return _unreachable("DynamoDB", error, operation, deadline)


def _s3_problem_for_exception(error: Exception, operation: str, deadline: float) -> Exception:
    if isinstance(error, ClientError):
        code = error_code(error)
        if code in _RETRYABLE or code in ("SlowDown", "503"):
            return BackendUnavailable(f"S3 is throttling or busy ({code}); retry later", retry_after=1)
        logger.error("S3 refused %s: %s %s", operation, code, error.response.get("Error", {}).get("Message"))
        return BackendUnavailable(
            f"S3 refused the {operation} call ({code or 'unknown error'})", retry_after=5
        )
    return _unreachable("S3", error, operation, deadline)


def _unreachable(service: str, error: Exception, operation: str, deadline: float) -> Exception:
    """The problem for an error that is not the service's answer: a timeout, no credentials, the network."""
    if isinstance(error, TimeoutError):
        return BackendUnavailable(
            f"{service} cannot be reached or did not answer {operation} within {deadline:g} s"
        )
    if isinstance(error, NoCredentialsError):
        return BackendUnavailable(f"no AWS credentials are configured for {service}", retry_after=30)
    if isinstance(error, BotoCoreError):
        logger.warning("%s %s failed: %s", service, operation, error)
        return BackendUnavailable(f"{service} cannot be reached for {operation}")
    return error


class _ErrorBoundary:
    """Raise the service's error in place of an SDK error (or the deadline's `TimeoutError`) of one call.
    A class rather than a generator-based context manager: it wraps every backend call."""

    __slots__ = ("_deadline", "_operation")

    def __init__(self, operation: str, deadline: float) -> None:
        self._operation = operation
        self._deadline = deadline

    def _problem(self, error: Exception) -> Exception:
        raise NotImplementedError

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, raised: BaseException | None, _: TracebackType | None
    ) -> None:
        if isinstance(raised, Exception) and not isinstance(raised, ProblemError):
            error = self._problem(raised)
            if error is not raised:
                raise error from raised


class map_dynamodb_errors(_ErrorBoundary):  # noqa: N801 - used as a `with` statement, like a contextlib function
    __slots__ = ("_table",)

    def __init__(self, table: str, operation: str, deadline: float) -> None:
        super().__init__(operation, deadline)
        self._table = table

    def _problem(self, error: Exception) -> Exception:
        return _problem_for_exception(error, self._table, self._operation, self._deadline)


class map_s3_errors(_ErrorBoundary):  # noqa: N801 - used as a `with` statement, like a contextlib function
    __slots__ = ()

    def _problem(self, error: Exception) -> Exception:
        return _s3_problem_for_exception(error, self._operation, self._deadline)
