"""Where a DynamoDB-compatible test server does not do what DynamoDB does, one mark each.

A test so marked asserts what DynamoDB itself does; on the server named it is an expected failure
(strict, so it fails once the server catches up). docs/test-backends.md lists them all.
"""

from __future__ import annotations

import pytest

DYNALITE_HAS_NO_TRANSACTIONS = pytest.mark.differs_on(
    dynalite="dynalite has no TransactWriteItems (UnknownOperationException, so a 503 here); DynamoDB has"
)
DYNALITE_RETURNS_NO_OLD_ITEM = pytest.mark.differs_on(
    dynalite="dynalite ignores ReturnValuesOnConditionCheckFailure=ALL_OLD: a refused write comes back "
    "without the stored item (the service then reads the item, one GetItem more)"
)
MOTO_ITEM_LIMIT_IS_LOWER = pytest.mark.differs_on(
    moto="moto's limit is 405,000 bytes, a binary value counted by its base64 text: it refuses this item"
)
MOTO_GETS_ANY_KEY_SIZE = pytest.mark.differs_on(
    moto="moto checks the 2048-byte partition key limit on PutItem but not on GetItem"
)
DYNALITE_HAS_NO_TTL = pytest.mark.differs_on(
    dynalite="dynalite has no UpdateTimeToLive (UnknownOperationException); DescribeTimeToLive says DISABLED"
)
SQLITE_HAS_NO_ITEM_LIMIT = pytest.mark.differs_on(
    sqlite="SQLite has no item limit: it stores any state the 8 MiB request cap lets in"
)
DYNALITE_ANSWERS_1_MB_OF_A_BATCH = pytest.mark.differs_on(
    dynalite="dynalite's BatchGetItem answers about 1 MB and leaves the rest in UnprocessedKeys"
)
