"""What one load run measures and what one cell of the report holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
