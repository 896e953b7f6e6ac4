"""What one load run measures and what one cell of the report holds."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class LoadSpec:
    """One closed-loop load: `connections` connections, each sending its next request when answered.

    mode: `get` (GET prefix+id over `n_ids` seeded ids), `put` (PUT prefix+id, a body carrying the
    payload), `cput` (PUT with `If-Match` on one id per connection, version taken from the ETag),
    `batch` (POST `batch_path` naming `batch_size` seeded ids).
    """

    base_url: str
    mode: str
    prefix: str
    payload_file: Path
    id_prefix: str
    connections: int
    duration: float
    n_ids: int = 64
    batch_size: int = 10
    manifest: str = "google.protobuf.BytesValue"
    batch_path: str = "/states:batchGet"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    p50_us: float
    p99_us: float
    non_2xx: int = 0
    socket_errors: int = 0
    syncs: int = 0
    conflicts: int = 0

    @property
    def ops_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class Cell:
    """One row of the report. `group` is `ceiling`, `floor` or `service`."""

    group: str
    backend: str
    op: str
    payload: int
    concurrency: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_op: float
    requests: int
    errors: int = 0
    peak_rss_mb: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def combined(cells: list[Cell]) -> list[Cell]:
    """One cell for each cell measured in several runs (`--runs`): the median of each figure of theirs, the
    largest peak RSS and the sum of requests and errors, the CPU range noted; in the order first measured."""
    runs: dict[tuple[str, str, str, int, int], list[Cell]] = {}
    for cell in cells:
        runs.setdefault((cell.group, cell.backend, cell.op, cell.payload, cell.concurrency), []).append(cell)
    result = []
    for measured in runs.values():
        if len(measured) == 1:
            result.append(measured[0])
            continue
        cpu = [c.cpu_us_per_op for c in measured]
        peaks = [c.peak_rss_mb for c in measured if c.peak_rss_mb is not None]
        note = f"CPU µs/op of {len(cpu)} runs: " + ", ".join(f"{value:,.0f}" for value in cpu)
        result.append(
            replace(
                measured[0],
                ops_per_s=statistics.median(c.ops_per_s for c in measured),
                p50_ms=statistics.median(c.p50_ms for c in measured),
                p99_ms=statistics.median(c.p99_ms for c in measured),
                cpu_us_per_op=statistics.median(cpu),
                requests=sum(c.requests for c in measured),
                errors=sum(c.errors for c in measured),
                peak_rss_mb=max(peaks) if peaks else None,
                note="; ".join(filter(None, [note, measured[0].note])),
                extra={
                    **{name: max(c.extra.get(name, 0.0) for c in measured) for name in measured[0].extra},
                    "cpu_us_per_op_min": min(cpu),
                    "cpu_us_per_op_max": max(cpu),
                },
            )
        )
    return result
