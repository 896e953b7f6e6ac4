"""The one error tree of the service.

Every failure a client can see is a `ProblemError`; the API renders each as an RFC 9457
problem document. Backend adapters translate their own exceptions into these at their boundary,
so nothing above the store ever sees a boto3 or sqlite3 error.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class ProblemError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def for_operation(self, index: int, persistence_id: str) -> Self:
        """Name the operation of a transaction that caused this error, in the detail and the problem."""
        self.detail = f"operation {index} failed: {self.detail}"
        self.extensions.update(operation_index=index, persistence_id=persistence_id)
        return self


class BadRequest(ProblemError):
    status = 400
    title = "Bad Request"
    slug = "bad-request"


class Unauthorized(ProblemError):
    """No bearer token, or (`invalid_token`) one that is not a key; RFC 6750 tells the two apart."""

    status = 401
    title = "Unauthorized"
    slug = "unauthorized"

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        super().__init__(detail)
        self.invalid_token = invalid_token

    @property
    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="statestore"'
        if self.invalid_token:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}


class StateNotFound(ProblemError):
    status = 404
    title = "Not Found"
    slug = "not-found"

    @property
    def headers(self) -> dict[str, str]:
        # A 404 is cacheable by default; the state may be written a moment later.
        return {"Cache-Control": "no-cache"}


class _VersionRefusal(ProblemError):
    """A write refused on the stored version, which the problem carries as `current_version` when a state is
    stored: a string of decimal digits, as every 64-bit integer the service answers with."""

    def __init__(self, detail: str, *, current_version: int | None = None) -> None:
        if current_version is None:
            super().__init__(detail)
        else:
            super().__init__(detail, current_version=str(current_version))


class VersionConflict(_VersionRefusal):
    """The monotonic version guard refused a write that does not move the version forward."""

    status = 409
    title = "Version Conflict"
    slug = "version-conflict"


class PreconditionFailed(_VersionRefusal):
    status = 412
    title = "Precondition Failed"
    slug = "precondition-failed"


class _BodyLeftUnread(ProblemError):
    """A refusal that leaves the rest of the body unread: the connection cannot carry another request."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class RequestTimeout(_BodyLeftUnread):
    status = 408
    title = "Request Timeout"
    slug = "request-timeout"


class ClientClosedRequest(ProblemError):
    """The client hung up before its body arrived, or while its request waited for a change: nobody reads
    the answer, but the access log and the metrics count it, under nginx's status for it, as the client's
    doing rather than the service's."""

    status = 499
    title = "Client Closed Request"
    slug = "client-closed-request"


class PayloadTooLarge(_BodyLeftUnread):
    status = 413
    title = "Content Too Large"
    slug = "too-large"


class UnsupportedMediaType(_BodyLeftUnread):
    status = 415
    title = "Unsupported Media Type"
    slug = "unsupported-media-type"


class InvalidState(ProblemError):
    status = 422
    title = "Unprocessable Content"
    slug = "invalid"


class IdempotencyKeyReused(InvalidState):
    """A write whose `Idempotency-Key` is the stored item's, with other content: the key names another
    write."""

    slug = "idempotency-key-reused"


class CorruptItem(ProblemError):
    """A stored item the service cannot read: named by its attribute, never by its value (maybe a secret)."""

    status = 502
    title = "Bad Gateway"
    slug = "corrupt-item"


class _RetryLater(ProblemError):
    """A 503 that retrying after `Retry-After` seconds may cure."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BackendUnavailable(_RetryLater):
    """The backend is throttling, unreachable, too slow, or missing its table; retrying later may work."""

    slug = "backend-unavailable"


class TooManyWaiters(_RetryLater):
    """`STATESTORE_MAX_WAITERS` requests are waiting for a change already."""

    slug = "too-many-waiters"


class AnswersUnsent(_RetryLater):
    """The answers that clients have not taken yet hold all the room for states the process allows."""

    slug = "answers-unsent"


class WorkerUnavailable(_RetryLater):
    """The protobuf worker process has too many calls waiting, or stopped while it held this one."""

    slug = "worker-unavailable"


class TableUnusable(BackendUnavailable):
    """The table is missing or cannot hold the service's items: no retry cures it, so start-up stops."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=30)


class TableMissing(TableUnusable):
    slug = "table-missing"

    def __init__(self, table: str) -> None:
        super().__init__(f"DynamoDB table {table!r} does not exist; create it with `statestore create-table`")


class TableKeyMismatch(TableUnusable):
    slug = "table-key-mismatch"

    def __init__(self, table: str, found: str, expected: str) -> None:
        super().__init__(
            f"DynamoDB table {table!r} has the key {found}, but statestore needs {expected} only; "
            "set STATESTORE_DYNAMODB_TABLE to a table with that key"
        )
