"""The one place that says how the benchmark talks to DynamoDB.

`BOTOCORE_CONFIG` must mirror the service's own botocore `Config` (its DynamoDB adapter): the client
floor is only a fair floor when both sides pay for the same client behaviour.
"""

from __future__ import annotations

from botocore.config import Config

BOTOCORE_CONFIG = Config(
    max_pool_connections=64,
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    parameter_validation=False,
)

TABLE = "bench_states"
REGION = "us-east-1"

# dynalite accepts any credentials; these keep the SDK from looking for real ones (or for EC2 metadata).
AWS_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def state_item(persistence_id: str, version: int, manifest: str, payload: bytes) -> dict[str, object]:
    """An item in the contract's layout (the same as ego-contrib's Go store)."""
    return {
        "PersistenceID": {"S": persistence_id},
        "VersionNumber": {"N": str(version)},
        "StatePayload": {"B": payload},
        "StateManifest": {"S": manifest},
        "Timestamp": {"N": "1764115200000"},
        "ShardNumber": {"N": "0"},
    }


_COMPARED = (
    "max_pool_connections",
    "retries",
    "connect_timeout",
    "read_timeout",
    "parameter_validation",
    "tcp_keepalive",
)


def differences_from_service() -> list[str]:
    """Where `BOTOCORE_CONFIG` differs from the service's own Config (`app.store.dynamodb.CLIENT_CONFIG`)."""
    try:
        from app.store import dynamodb
    except ImportError:
        return []
    theirs = getattr(dynamodb, "CLIENT_CONFIG", None)
    if not isinstance(theirs, Config):
        return ["app.store.dynamodb.CLIENT_CONFIG not found: cannot check that the floor mirrors the service"]
    return [
        f"{name}: benchmark {getattr(BOTOCORE_CONFIG, name)!r}, service {getattr(theirs, name)!r}"
        for name in _COMPARED
        if getattr(BOTOCORE_CONFIG, name) != getattr(theirs, name)
    ]
