"""The bytes a write stores: its payload checked against its type, or its JSON state serialized."""

from __future__ import annotations

from typing import Literal

from app.api.schemas import PutStateRequest
from app.errors import InvalidState
from app.protobuf import TypeRegistry

ManifestPolicy = Literal["permissive", "strict"]


def _refusal(field: str, detail: str) -> InvalidState:
    return InvalidState(detail, errors=[{"loc": ["body", field], "msg": detail}])


def payload_to_store(request: PutStateRequest, types: TypeRegistry, policy: ManifestPolicy) -> bytes:
    manifest = request.manifest
    if request.payload is None:
        try:
            return types.from_json(manifest, request.state)
        except InvalidState as exc:
            raise _refusal("state", exc.detail) from exc
    if types.knows(manifest):
        try:
            types.check_payload(manifest, request.payload)
        except InvalidState as exc:
            raise _refusal("payload", exc.detail) from exc
    elif policy == "strict":
        raise _refusal(
            "manifest",
            f"{manifest} is neither a well-known type nor in the loaded descriptor sets,"
            " and STATESTORE_MANIFEST_POLICY is strict",
        )
    return request.payload
