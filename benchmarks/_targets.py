"""The targets of issue 6, judged on the cells of one run."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks._model import Cell

CPU_FACTOR = 1.15
SQLITE_GET_RATIO = 0.6
SQLITE_PUT_RATIO = 0.4
RSS_LIMIT_MB = 150.0
SERVICE_TO_FLOOR = {"GET": ("GetItem", "GET"), "PUT": ("PutItem", "PUT")}


@dataclass(frozen=True)
class Verdict:
    status: str  # PASS, FAIL or SKIP
    target: str
    detail: str

    def line(self) -> str:
        return f"{self.status} {self.target}: {self.detail}"


def _find(
    cells: list[Cell], group: str, backend: str, op: str, payload: int, concurrency: int
) -> Cell | None:
    for cell in cells:
        if (cell.group, cell.backend, cell.op, cell.payload, cell.concurrency) == (
            group,
            backend,
            op,
            payload,
            concurrency,
        ):
            return cell
    return None


# The service on each DynamoDB path, by its benchmark name, and the floor of the client that makes its calls.
_FLOOR_OF = {"dynamodb": "lean", "dynamodb-aioboto3": "aioboto3"}
# Issue 23: the service on the lean path at most this share of the aioboto3 floor (200 B GET and PUT).
LEAN_TO_AIOBOTO3_FLOOR = 0.6


def _dynamodb_cpu(cells: list[Cell]) -> list[Verdict]:
    verdicts = []
    for service in (c for c in cells if c.group == "service" and c.backend in _FLOOR_OF):
        if service.op not in SERVICE_TO_FLOOR:
            continue
        client = _FLOOR_OF[service.backend]
        floor_op, ceiling_op = SERVICE_TO_FLOOR[service.op]
        floor = _find(cells, "floor", client, floor_op, service.payload, service.concurrency)
        ceiling = _find(cells, "ceiling", "minimal", ceiling_op, service.payload, service.concurrency)
        target = f"{service.backend} CPU/{service.op} {service.payload} B c={service.concurrency}"
        if floor is None or ceiling is None:
            verdicts.append(Verdict("SKIP", target, "no client floor or minimal endpoint cell to compare"))
            continue
        budget = CPU_FACTOR * (floor.cpu_us_per_op + ceiling.cpu_us_per_op)
        ratio = service.cpu_us_per_op / (floor.cpu_us_per_op + ceiling.cpu_us_per_op)
        detail = (
            f"{service.cpu_us_per_op:.0f} µs vs budget {budget:.0f} µs = {CPU_FACTOR} x "
            f"({floor.cpu_us_per_op:.0f} {client} + {ceiling.cpu_us_per_op:.0f} endpoint); x{ratio:.2f}"
        )
        verdicts.append(Verdict("PASS" if service.cpu_us_per_op <= budget else "FAIL", target, detail))
        if client == "lean" and service.payload == 200:
            verdicts.append(_against_aioboto3_floor(cells, service, floor_op))
    return verdicts


def _against_aioboto3_floor(cells: list[Cell], service: Cell, floor_op: str) -> Verdict:
    target = (
        f"dynamodb (lean) CPU/{service.op} {service.payload} B c={service.concurrency} "
        f"≤ {LEAN_TO_AIOBOTO3_FLOOR} x aioboto3 floor"
    )
    floor = _find(cells, "floor", "aioboto3", floor_op, service.payload, service.concurrency)
    if floor is None:
        return Verdict("SKIP", target, "no aioboto3 floor cell to compare")
    ratio = service.cpu_us_per_op / floor.cpu_us_per_op
    detail = f"{service.cpu_us_per_op:.0f} µs vs {floor.cpu_us_per_op:.0f} µs aioboto3 floor; x{ratio:.2f}"
    return Verdict("PASS" if ratio <= LEAN_TO_AIOBOTO3_FLOOR else "FAIL", target, detail)


def _sqlite_throughput(cells: list[Cell], concurrencies: list[int]) -> list[Verdict]:
    verdicts = []
    concurrency = 32 if 32 in concurrencies else max(concurrencies)
    for op, factor in (("GET", SQLITE_GET_RATIO), ("PUT", SQLITE_PUT_RATIO)):
        target = f"SQLite {op} req/s c={concurrency} 200 B ≥ {factor} x minimal endpoint"
        service = _find(cells, "service", "sqlite", op, 200, concurrency)
        ceiling = _find(cells, "ceiling", "minimal", op, 200, concurrency)
        if service is None or ceiling is None:
            verdicts.append(Verdict("SKIP", target, "cells missing"))
            continue
        ratio = service.ops_per_s / ceiling.ops_per_s if ceiling.ops_per_s else 0.0
        detail = f"{service.ops_per_s:.0f} vs {ceiling.ops_per_s:.0f} req/s = x{ratio:.2f}"
        verdicts.append(Verdict("PASS" if ratio >= factor else "FAIL", target, detail))
    return verdicts


def _rss(peaks: dict[str, float]) -> list[Verdict]:
    verdicts = []
    for server, peak in peaks.items():
        if not server.startswith("service"):
            continue
        status = "PASS" if peak <= RSS_LIMIT_MB else "FAIL"
        verdicts.append(Verdict(status, f"peak RSS {server} ≤ {RSS_LIMIT_MB:.0f} MB", f"{peak:.1f} MB"))
    return verdicts or [Verdict("SKIP", f"peak RSS ≤ {RSS_LIMIT_MB:.0f} MB", "the service was not measured")]


def evaluate(cells: list[Cell], peaks: dict[str, float], concurrencies: list[int]) -> list[Verdict]:
    """Every target as a verdict. `peaks` maps a server's name to its peak RSS over the run (MB)."""
    cpu = _dynamodb_cpu(cells) or [
        Verdict("SKIP", "DynamoDB CPU per GET/PUT", "DynamoDB service not measured")
    ]
    return cpu + _sqlite_throughput(cells, concurrencies) + _rss(peaks)
