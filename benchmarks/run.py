"""The benchmark in one command: `python -m benchmarks.run` (`--quick` for a smoke run of seconds).

Measures, in one run on this machine: (1) the HTTP ceiling (a minimal FastAPI endpoint served like the
service), (2) the client floor (a direct aioboto3 loop on dynalite), (3) the service (PUT, GET,
conditional PUT, batchGet on SQLite and on DynamoDB via dynalite), then writes benchmarks/results/
and prints the targets of issue 6 as PASS/FAIL lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import _dynalite, _environment, _report, _service, _wrk
from benchmarks._background import Background
from benchmarks._floor import run_client_floor
from benchmarks._meter import Meter
from benchmarks._model import Cell, LoadSpec
from benchmarks._payloads import MANIFEST, batch_size, write_payload_file
from benchmarks._processes import Children, sigterm_as_interrupt
from benchmarks._targets import evaluate

BENCH_DIR = Path(__file__).resolve().parent
SERVICE_OPS = ("PUT", "GET", "CPUT", "batchGet")
BUSY_MACHINE_CORES = 0.15
_MODES = {"GET": "get", "PUT": "put", "CPUT": "cput", "batchGet": "batch"}
_ID_PREFIX = {"GET": "g", "PUT": "p", "CPUT": "c", "batchGet": "g"}


@dataclass(frozen=True)
class Plan:
    sizes: list[int]
    concurrencies: list[int]
    duration: float
    floor_duration: float
    backends: list[str]
    load: str
    install: bool
    results_dir: Path
    service_cmd: str | None
    service_log_level: str
    n_ids: int
    strict: bool


def parse_args(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 B, concurrency 4, 1 s cells")
    parser.add_argument("--sizes", default="200,10240,307200", help="payload sizes in bytes")
    parser.add_argument("--concurrency", default="1,32", help="connections (wrk threads) per cell")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per HTTP cell (whole s for wrk)")
    parser.add_argument("--floor-duration", type=float, default=2.5, help="seconds per client-floor cell")
    parser.add_argument("--backends", default="sqlite,dynamodb")
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk, the Python fallback, or wrk when available (default)",
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never run apt-get or npm; skip what is missing"
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--service-cmd", help="command serving the service (default: python -m app.cli serve)"
    )
    parser.add_argument("--service-log-level", default="warning", help="STATESTORE_LOG_LEVEL of the service")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target FAILs")
    args = parser.parse_args(argv)
    quick = args.quick
    return Plan(
        sizes=[200] if quick else [int(s) for s in args.sizes.split(",")],
        concurrencies=[4] if quick else [int(c) for c in args.concurrency.split(",")],
        duration=1.0 if quick else args.duration,
        floor_duration=0.5 if quick else args.floor_duration,
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        load=args.load,
        install=not args.no_install,
        results_dir=args.results_dir,
        service_cmd=args.service_cmd,
        service_log_level=args.service_log_level,
        n_ids=16 if quick else 64,
        strict=args.strict,
    )


class Runner:
    def __init__(self, plan: Plan, wrk: str | None, tmp: Path, children: Children) -> None:
        self.plan, self.wrk, self.tmp, self.children = plan, wrk, tmp, children
        self.cells: list[Cell] = []
        self.peaks: dict[str, float] = {}
        self.notes: list[str] = []
        self.failed = False
        self.background = Background()
        self.payload_files = {size: write_payload_file(tmp, size) for size in plan.sizes}

    def _spec(self, base: str, op: str, size: int, concurrency: int, prefix: str) -> LoadSpec:
        return LoadSpec(
            base_url=base,
            mode=_MODES[op],
            prefix=prefix,
            payload_file=self.payload_files[size],
            id_prefix=f"{_ID_PREFIX[op]}{size}-",
            connections=concurrency,
            duration=self.plan.duration,
            n_ids=self.plan.n_ids,
            batch_size=batch_size(size),
            manifest=MANIFEST,
        )

    def _cell(self, meter: Meter, group: str, backend: str, op: str, spec: LoadSpec, size: int) -> None:
        m = meter.measure(spec, self.wrk)
        note = ""
        if op == "CPUT":
            note = f"{m.load.syncs} version reads, {m.load.conflicts} conflicts"
        elif op == "batchGet":
            items = m.load.ops_per_s * spec.batch_size
            note = (
                f"{spec.batch_size} ids/request: {items:,.0f} items/s, "
                f"{m.cpu_us_per_op / spec.batch_size:,.0f} CPU µs/item"
            )
        cell = Cell(
            group,
            backend,
            op,
            size,
            spec.connections,
            m.load.ops_per_s,
            m.load.p50_us / 1e3,
            m.load.p99_us / 1e3,
            m.cpu_us_per_op,
            m.load.requests,
            m.load.non_2xx + m.load.socket_errors,
            m.peak_rss_mb,
            note,
            {"background_cores": m.background_cores},
        )
        self.cells.append(cell)
        print(
            f"  {group:8} {backend:9} {op:9} {size:>7} B c={spec.connections:<3} "
            f"{cell.ops_per_s:>9,.0f} ops/s  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
            f"{cell.cpu_us_per_op:>7,.0f} CPU µs/op  RSS {m.peak_rss_mb:5.0f} MB  errors {cell.errors}  "
            f"others {m.background_cores:.2f} cores",
            flush=True,
        )

    def ceiling(self) -> None:
        print("1. HTTP ceiling: minimal endpoint", flush=True)
        server, base = _service.start_minimal(self.children, self.tmp)
        meter = Meter(server, self.background)
        warm_up = self._spec(
            base, "GET", self.plan.sizes[0], max(self.plan.concurrencies), f"/min/{self.plan.sizes[0]}/"
        )
        meter.measure(replace(warm_up, duration=1.0), self.wrk)  # first requests pay for imports and caches
        for size in self.plan.sizes:
            for op in ("GET", "PUT"):
                for concurrency in self.plan.concurrencies:
                    spec = self._spec(base, op, size, concurrency, prefix=f"/min/{size}/")
                    self._cell(meter, "ceiling", "minimal", op, spec, size)
        self.peaks["minimal endpoint"] = meter.peak_mb
        self.children.stop(server)

    def floor(self, endpoint: str) -> None:
        print("2. Client floor: direct aioboto3 on dynalite", flush=True)
        for cell in run_client_floor(
            endpoint, self.plan.sizes, self.plan.concurrencies, self.plan.floor_duration, MANIFEST
        ):
            self.cells.append(cell)
            print(
                f"  floor    aioboto3  {cell.op:9} {cell.payload:>7} B c={cell.concurrency:<3} "
                f"{cell.ops_per_s:>9,.0f} ops/s  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                f"{cell.cpu_us_per_op:>7,.0f} CPU µs/call  RSS {cell.peak_rss_mb or 0:5.0f} MB",
                flush=True,
            )

    def service(self, argv: list[str], backend: str, dynamodb_endpoint: str | None) -> None:
        print(f"3. Service on {backend}", flush=True)
        server, base = _service.start_service(
            self.children, argv, backend, self.tmp, dynamodb_endpoint, self.plan.service_log_level
        )
        port = urlsplit(base).port or 80
        meter = Meter(server, self.background)
        try:
            for size in self.plan.sizes:
                payload = self.payload_files[size].read_text()
                _service.seed(port, f"g{size}-", self.plan.n_ids, payload, MANIFEST)
                _service.seed(port, f"c{size}-", max(self.plan.concurrencies), payload, MANIFEST)
                present, why = _service.batch_get_present(port, [f"g{size}-0"])
                if not present and why not in self.notes:
                    self.notes.append(why)
                for op in SERVICE_OPS:
                    if op == "batchGet" and not present:
                        continue
                    for concurrency in self.plan.concurrencies:
                        spec = self._spec(base, op, size, concurrency, prefix="/states/")
                        self._cell(meter, "service", backend, op, spec, size)
        finally:
            self.peaks[f"service ({backend})"] = meter.peak_mb
            self.children.stop(server)


def _section(runner: Runner, what: str, action: Callable[..., None], *args: object) -> None:
    """Run one part; a failure is reported and the run goes on with the other parts."""
    try:
        action(*args)
    except (RuntimeError, OSError, ValueError) as exc:
        runner.failed = True
        runner.notes.append(f"{what} failed: {str(exc).strip().splitlines()[0][:300]}")
        print(f"ERROR {what}: {exc}", file=sys.stderr, flush=True)


def run(plan: Plan) -> int:
    started = time.monotonic()
    notes: list[str] = []
    wrk: str | None = None
    if plan.load != "python":
        wrk, why = _wrk.locate(plan.install)
        if wrk is None:
            if plan.load == "wrk":
                print(f"ERROR: {why}", file=sys.stderr)
                return 2
            notes.append(
                f"wrk unavailable ({why}): load came from the Python fallback generator, which "
                "shares the cores with the server; its ops/s and latencies understate the server"
            )
    meta = _environment.describe(wrk, plan.duration, plan.floor_duration)
    with (
        sigterm_as_interrupt(),
        Children() as children,
        tempfile.TemporaryDirectory(prefix="statestore-bench-") as tmp_name,
    ):
        runner = Runner(plan, wrk, Path(tmp_name), children)
        runner.notes.extend(notes)
        _section(runner, "HTTP ceiling", runner.ceiling)
        dynamodb_endpoint = None
        if "dynamodb" in plan.backends:
            cli, why = _dynalite.locate(BENCH_DIR / ".work", plan.install)
            if cli is None:
                runner.notes.append(f"DynamoDB parts skipped: {why}")
            else:
                meta["dynalite"] = _dynalite.version(cli)
                dynalite, dynamodb_endpoint = _dynalite.start(children, cli, Path(tmp_name))
                runner.background.own_pids.add(dynalite.pid)
                _section(runner, "client floor", runner.floor, dynamodb_endpoint)
        argv = _service.service_argv(plan.service_cmd)
        if argv is None:
            runner.notes.append("service not measured: this checkout has no app.cli yet")
        else:
            meta["service command"] = " ".join(argv[-3:] if argv[0] == sys.executable else argv)
            for backend in plan.backends:
                if backend == "dynamodb" and dynamodb_endpoint is None:
                    continue
                _section(runner, f"service on {backend}", runner.service, argv, backend, dynamodb_endpoint)
    concurrency = 32 if 32 in plan.concurrencies else max(plan.concurrencies)
    busy = max((c.extra.get("background_cores", 0.0) for c in runner.cells), default=0.0)
    if busy > BUSY_MACHINE_CORES:
        runner.notes.insert(
            0,
            f"WARNING: other programs on this machine used up to {busy:.2f} cores during the "
            "cells (column 'others'): throughput and latency figures are skewed; rerun on a "
            "quiet machine",
        )
    verdicts = evaluate(runner.cells, runner.peaks, plan.concurrencies)
    meta["wall time"] = f"{time.monotonic() - started:.0f} s"
    report = _report.write(
        plan.results_dir, runner.cells, verdicts, runner.peaks, meta, runner.notes, concurrency
    )
    print()
    for note in runner.notes:
        print(f"NOTE {note}")
    for verdict in verdicts:
        print(verdict.line())
    print(f"report: {report} (chart: {report.with_name('chart.png')})")
    if runner.failed:
        return 2
    return 1 if plan.strict and any(v.status == "FAIL" for v in verdicts) else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        print("interrupted: every child process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
