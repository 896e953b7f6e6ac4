"""A short run of scripts/soak.py against `statestore serve`: every answer expected, no update lost."""

from __future__ import annotations

from scripts.soak import run_soak, serving

# The soak is as long as its request budget, whatever the machine's speed (about a second and a half on a
# quiet one); its time limit only bounds a server that stopped answering.
SOAK_REQUESTS = 2_000
SOAK_SECONDS_AT_MOST = 120.0


async def test_a_short_soak_gets_no_error_and_loses_no_update() -> None:
    with serving() as (url, pid):
        report = await run_soak(
            url, seconds=SOAK_SECONDS_AT_MOST, concurrency=64, max_requests=SOAK_REQUESTS, pid=pid
        )
    assert not report.errors, report.errors
    assert report.lost_updates == 0
    assert report.requests == SOAK_REQUESTS, "the soak stopped before its budget was spent"
    assert report.increments_acknowledged > 0
    assert report.statuses["412"] > 0, "the counters never raced: the soak tested no compare-and-set"
    assert report.rss_start_mib is not None
    assert report.rss_end_mib is not None
    assert report.rss_end_mib - report.rss_start_mib < 32
