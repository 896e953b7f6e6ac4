"""The production backend: DynamoDB, or any compatible endpoint, through one aioboto3 client."""

from app.store.dynamodb.store import CALL_DEADLINE_SECONDS, CLIENT_CONFIG, DynamoDBStore

__all__ = ["CALL_DEADLINE_SECONDS", "CLIENT_CONFIG", "DynamoDBStore"]
