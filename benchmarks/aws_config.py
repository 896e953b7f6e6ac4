"""The one place that says how the benchmark talks to DynamoDB.

`BOTOCORE_CONFIG` is the service's own botocore `Config`: the client floor is only a fair floor when
both sides pay for the same client behaviour.
"""

from __future__ import annotations

from app.store.dynamodb import CLIENT_CONFIG as BOTOCORE_CONFIG

__all__ = ["AWS_ENV", "BOTOCORE_CONFIG", "REGION", "TABLE"]

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
