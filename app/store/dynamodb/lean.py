"""The lean client: DynamoDB's hot calls as signed JSON requests, answered as the aiobotocore client answers.

`GetItem`, `PutItem`, `DeleteItem`, `BatchGetItem` and `TransactWriteItems` are each one POST of the
operation's JSON (`_json_protocol`), signed by botocore's own SigV4 signer with the aioboto3 session's
credentials (frozen per request, so refreshable ones stay fresh), sent through one pooled aiohttp session
to the endpoint and region the aioboto3 client resolved. They take the aiobotocore client's keyword
arguments and return its response dicts, and they fail as it fails: botocore's `ClientError` for an error
answer, botocore's connection and timeout errors for the network, so `map_dynamodb_errors` maps both
paths. Retries are botocore's standard mode itself (`botocore.retries.standard`: its retry conditions,
its jittered exponential backoff, its retry quota, `x-amz-crc32` checked as it checks it), with the
attempts, timeouts and pool size of the service's botocore `Config`.

Every other call (the control plane: DescribeTable, CreateTable, TTL, and Scan) goes to the aioboto3
client, which stays the session, the credential chain, the region and endpoint resolution, and the
reference path (`STATESTORE_DYNAMODB_CLIENT=aioboto3`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)
from botocore.retries import quota, standard
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from app.store.dynamodb._details import note_answer
from app.store.dynamodb._json_protocol import decode_answer, error_response, parsed_body, request_body

if TYPE_CHECKING:
    from aiobotocore.credentials import AioCredentials
    from types_aiobotocore_dynamodb import DynamoDBClient

_TARGET_PREFIX = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SERVICE = "dynamodb"


class _SignedRequest(AWSRequest):
    """The request botocore's signer signs, holding the headers aiohttp then sends. They are a `CIMultiDict`,
    not botocore's `HTTPHeaders`: an `email.message.Message`, whose every store, lookup and read goes through
    the email package's header policy. The body is the JSON as built: `AWSRequest.body` would prepare a whole
    copy of the request (URL, headers and body) to give back those same bytes."""

    def __init__(self, url: str, body: bytes, headers: CIMultiDict[str]) -> None:
        super().__init__(method="POST", url=url, data=body)
        self.headers = headers  # type: ignore[assignment]  # the signer only stores, deletes, tests and reads

    @property
    def body(self) -> Any:  # botocore's stubs say `str`; its signer reads bytes, as botocore's own gives it
        return self.data


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer, read whole: what botocore's retry conditions read of one (`AWSResponse`'s names)."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def checksum_holds(self) -> bool:
        sent = self.headers.get("x-amz-crc32")
        return sent is None or (zlib.crc32(self.content) & 0xFFFFFFFF) == int(sent)

    def metadata(self, attempts: int) -> dict[str, Any]:
        headers = {name.lower(): value for name, value in self.headers.items()}
        return {
            "RequestId": headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": self.status_code,
            "HTTPHeaders": headers,
            "RetryAttempts": attempts - 1,
        }


class LeanClient:
    """The hot calls over the JSON protocol; every other attribute is the aioboto3 client's."""

    def __init__(
        self,
        sdk: DynamoDBClient,
        http: aiohttp.ClientSession,
        credentials: AioCredentials | None,
        max_attempts: int,
        call_details: bool,
    ) -> None:
        self._sdk = sdk
        self._call_details = call_details
        self._http = http
        self._credentials = credentials
        self._endpoint = sdk.meta.endpoint_url
        self._url = URL(self._endpoint, encoded=True)
        # The Host header aiohttp would send, set before signing: botocore's signer otherwise derives it
        # from the URL on every call (twice), and the header signed is then by construction the one sent.
        host = self._url.host_port_subcomponent
        if host is None:
            raise ValueError(f"the DynamoDB endpoint {self._endpoint!r} names no host")
        self._host = host.lower()  # as botocore writes a host it derives
        self._region = sdk.meta.region_name
        self._operations = {
            name: sdk.meta.service_model.operation_model(name)
            for name in ("GetItem", "PutItem", "DeleteItem", "BatchGetItem", "TransactWriteItems")
        }
        self._modeled_errors = {
            name: frozenset(shape.name for shape in operation.error_shapes)
            for name, operation in self._operations.items()
        }
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota())
        self._retries = standard.RetryHandler(
            retry_policy=standard.RetryPolicy(
                retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
                retry_backoff=standard.ExponentialBackoff(),
            ),
            retry_event_adapter=standard.RetryEventAdapter(),
            retry_quota=self._quota,  # type: ignore[arg-type]  # the stubs name the quota, not its checker
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        sdk: DynamoDBClient,
        credentials: AioCredentials | None,
        config: Config,
        *,
        call_details: bool = False,
    ) -> AsyncIterator[LeanClient]:
        """One pooled HTTP session for the process, with the connect and read timeouts, the pool size and
        the attempts of `config` (the aioboto3 client's); `call_details` asks each call for its consumed
        capacity and notes it with the retries (`app.store.call_details`), as `_details.py` does for the
        SDK's client."""
        options: Any = config  # botocore's stubs do not declare Config's options
        connector = aiohttp.TCPConnector(limit=options.max_pool_connections)
        timeout = aiohttp.ClientTimeout(sock_connect=options.connect_timeout, sock_read=options.read_timeout)
        retries: Mapping[str, Any] = options.retries or {}
        resolved: Any = sdk.meta.config  # the aioboto3 client's own, with its user agent filled in
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # Sent unsigned on every request, as botocore leaves them: the CRC32 is of the body as sent, and
            # the SDK's user agent, so that DynamoDB sees one client on both paths.
            headers={"Accept-Encoding": "identity", "User-Agent": str(resolved.user_agent)},
        ) as http:
            max_attempts = int(retries.get("max_attempts", standard.DEFAULT_MAX_ATTEMPTS))
            yield cls(sdk, http, credentials, max_attempts, call_details)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)

    async def get_item(self, **parameters: Any) -> dict[str, Any]:
        return await self._call("GetItem", parameters)

    async def put_item(self, **parameters: Any) -> dict[str, Any]:
        return await self._call("PutItem", parameters)

    async def delete_item(self, **parameters: Any) -> dict[str, Any]:
        return await self._call("DeleteItem", parameters)

    async def batch_get_item(self, **parameters: Any) -> dict[str, Any]:
        return await self._call("BatchGetItem", parameters)

    async def transact_write_items(self, **parameters: Any) -> dict[str, Any]:
        return await self._call("TransactWriteItems", parameters)

    async def _call(self, operation: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """One call, botocore's standard retries included: each attempt signed anew, as botocore signs."""
        if self._call_details:
            parameters = {"ReturnConsumedCapacity": "TOTAL", **parameters}
        body = request_body(parameters)
        request_context: dict[str, Any] = {}
        attempts = 0
        while True:
            attempts += 1
            answer: _Answer | None = None
            caught: Exception | None = None
            parsed: dict[str, Any] = {}
            try:
                answer = await self._send(operation, body)
            except (BotocoreConnectionError, HTTPClientError) as exc:
                caught = exc
            else:
                ok = 200 <= answer.status_code < 300
                if ok and answer.checksum_holds():
                    self._quota.release_retry_quota(request_context, answer)  # type: ignore[arg-type]
                    response = decode_answer(parsed_body(answer.content))
                    response["ResponseMetadata"] = answer.metadata(attempts)
                    if self._call_details:
                        note_answer(response)
                    return response
                if not ok:
                    parsed = error_response(
                        answer.status_code,
                        answer.content,
                        answer.metadata(attempts),
                        self._modeled_errors[operation],
                    )
            delay = self._retries.needs_retry(
                attempts=attempts,
                operation=self._operations[operation],
                response=None if answer is None else (answer, parsed),
                caught_exception=caught,
                request_dict={"context": request_context},
            )
            if delay is None:
                if self._call_details and parsed:
                    note_answer(parsed)
                raise _failure(operation, answer, parsed, caught)
            await asyncio.sleep(delay)

    async def _send(self, operation: str, body: bytes) -> _Answer:
        if self._credentials is None:
            raise NoCredentialsError
        frozen = await self._credentials.get_frozen_credentials()
        headers = CIMultiDict(
            {
                "Host": self._host,
                "Content-Type": _CONTENT_TYPE,
                "X-Amz-Target": _TARGET_PREFIX + operation,
            }
        )
        SigV4Auth(frozen, _SERVICE, self._region).add_auth(_SignedRequest(self._endpoint, body, headers))
        try:
            async with self._http.post(self._url, data=body, headers=headers) as response:
                return _Answer(response.status, response.headers, await response.read())
        # As aiobotocore names the HTTP session's failures, so that the retries and the errors' mapping
        # see the same exceptions on both paths.
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionClosedError(endpoint_url=self._endpoint, error=exc) from exc
        except aiohttp.ServerTimeoutError as exc:
            if str(exc).lower().startswith("connect"):
                raise ConnectTimeoutError(endpoint_url=self._endpoint, error=exc) from exc
            raise ReadTimeoutError(endpoint_url=self._endpoint, error=exc) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise EndpointConnectionError(endpoint_url=self._endpoint, error=exc) from exc


def _failure(
    operation: str, answer: _Answer | None, parsed: dict[str, Any], caught: Exception | None
) -> Exception:
    """What a call that will not be retried raises: the attempt's own exception, the service's error, or,
    for a success whose checksum never held, botocore's ChecksumError."""
    if caught is not None:
        return caught
    assert answer is not None
    if parsed:
        return ClientError(parsed, operation)  # type: ignore[arg-type]
    return ChecksumError(
        checksum_type="crc32",
        expected_checksum=answer.headers.get("x-amz-crc32", ""),
        actual_checksum=str(zlib.crc32(answer.content) & 0xFFFFFFFF),
    )
