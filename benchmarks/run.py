"""The benchmark in one command: `python -m benchmarks.run` (`--quick` for a smoke run of seconds).

Measures, in one run on this machine: (1) the HTTP ceiling (a minimal FastAPI endpoint served like the
service), (2) the client floor (a direct aioboto3 loop on dynalite), (3) the service (PUT, GET,
conditional PUT, batchGet on SQLite and on DynamoDB via dynalite), then writes benchmarks/results/
and prints the targets of issue 6 as PASS/FAIL lines. `--profile BACKEND:OP` instead samples one
server under one of those loads with py-spy (`benchmarks/_profile.py`).

It installs nothing: wrk and dynalite are prerequisites (benchmarks/README.md), and a run without them
says what it measured instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks import _dynalite, _environment, _profile, _report, _service, _wrk, aws_config
from benchmarks._background import Background
from benchmarks._floor import run_client_floor
from benchmarks._meter import Meter
from benchmarks._model import Cell, LoadSpec, combined
from benchmarks._payloads import MANIFEST, batch_size, write_payload_file
from benchmarks._processes import sigterm_as_interrupt
from benchmarks._service import Served
from benchmarks._targets import evaluate

BENCH_DIR = Path(__file__).resolve().parent
SERVICE_OPS = ("PUT", "GET", "CPUT", "batchGet")
BUSY_MACHINE_CORES = 0.15
PROFILE_SECONDS = 10
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
    dynalite: Path
    results_dir: Path
    service_cmd: str | None
    service_log_level: str
    n_ids: int
    strict: bool
    profile: tuple[str, str] | None
    runs: int = 1


def parse_args(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 B, concurrency 4, 1 s cells")
    parser.add_argument("--sizes", default="200,10240,307200", help="payload sizes in bytes")
    parser.add_argument("--concurrency", default="1,32", help="connections (wrk threads) per cell")
    parser.add_argument(
        "--duration",
        type=float,
        help=f"seconds per HTTP cell (whole s for wrk; default 4), or of sampling with --profile "
        f"(default {PROFILE_SECONDS})",
    )
    parser.add_argument("--floor-duration", type=float, default=2.5, help="seconds per client-floor cell")
    parser.add_argument(
        "--backends",
        default="sqlite,dynamodb,dynamodb-aioboto3",
        help="dynamodb: the lean client (the default); dynamodb-aioboto3: through aioboto3 alone",
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk, the Python fallback, or wrk when available (default)",
    )
    parser.add_argument(
        "--dynalite",
        type=Path,
        default=_dynalite.INSTALLED_CLI,
        help="dynalite's cli.js (default: %(default)s)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--service-cmd", help="command serving the service (default: python -m app.cli serve)"
    )
    parser.add_argument("--service-log-level", default="warning", help="STATESTORE_LOG_LEVEL of the service")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target FAILs")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="measure everything this many times in turn, and judge the median of each cell (default 1)",
    )
    parser.add_argument(
        "--profile",
        type=_profile_target,
        metavar="BACKEND:OP",
        help="instead of the run: sample one server (minimal, sqlite or dynamodb) under one load "
        f"({', '.join(_MODES)}) with py-spy, at the first of --sizes and the largest --concurrency",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    duration = args.duration or (PROFILE_SECONDS if args.profile else 4.0)
    return Plan(
        sizes=[200] if quick else [int(s) for s in args.sizes.split(",")],
        concurrencies=[4] if quick else [int(c) for c in args.concurrency.split(",")],
        duration=1.0 if quick else duration,
        floor_duration=0.5 if quick else args.floor_duration,
        backends=[b.strip() for b in args.backends.split(",") if b.strip()],
        load=args.load,
        dynalite=args.dynalite,
        results_dir=args.results_dir,
        service_cmd=args.service_cmd,
        service_log_level=args.service_log_level,
        n_ids=16 if quick else 64,
        strict=args.strict,
        profile=args.profile,
        runs=max(1, args.runs),
    )


def _profile_target(text: str) -> tuple[str, str]:
    backend, _, op = text.partition(":")
    if backend not in ("minimal", "sqlite", "dynamodb") or op not in _MODES:
        raise argparse.ArgumentTypeError(f"{text!r} is not BACKEND:OP, e.g. dynamodb:GET")
    return backend, op


class CannotRun(Exception):
    """Something the options ask for is missing; the message says what."""


class Runner:
    """The parts of one run (or profile), each server it starts registered with `servers`."""

    def __init__(self, plan: Plan, wrk: str | None, tmp: Path, servers: ExitStack) -> None:
        self.plan, self.wrk, self.tmp, self.servers = plan, wrk, tmp, servers
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

    def _peak(self, server: str, peak_mb: float) -> None:
        self.peaks[server] = max(self.peaks.get(server, 0.0), peak_mb)

    def ceiling(self) -> None:
        print("1. HTTP ceiling: minimal endpoint", flush=True)
        with _service.minimal(self.tmp) as (server, base):
            meter = Meter(server, self.background)
            warm_up = self._spec(
                base, "GET", self.plan.sizes[0], max(self.plan.concurrencies), f"/min/{self.plan.sizes[0]}/"
            )
            meter.measure(
                replace(warm_up, duration=1.0), self.wrk
            )  # first requests pay for imports and caches
            for size in self.plan.sizes:
                for op in ("GET", "PUT"):
                    for concurrency in self.plan.concurrencies:
                        spec = self._spec(base, op, size, concurrency, prefix=f"/min/{size}/")
                        self._cell(meter, "ceiling", "minimal", op, spec, size)
            self._peak("minimal endpoint", meter.peak_mb)

    def dynalite(self, meta: dict[str, str]) -> str | None:
        """The endpoint of dynalite, started for the rest of the run; None, noted, when it cannot run."""
        dynalite = self.servers.enter_context(
            _dynalite.started(self.tmp, self.plan.dynalite, self._dynamodb_skipped)
        )
        if dynalite is None:
            return None
        meta["dynalite"] = _dynalite.version(self.plan.dynalite)
        pid, endpoint = dynalite
        self.background.own_pids.add(pid)
        return endpoint

    def _dynamodb_skipped(self, why: str) -> None:
        self.notes.append(f"DynamoDB parts skipped: {why}")

    def floor(self, endpoint: str, client: str) -> None:
        print(f"2. Client floor: direct {client} calls on dynalite", flush=True)
        for cell in run_client_floor(
            endpoint, self.plan.sizes, self.plan.concurrencies, self.plan.floor_duration, MANIFEST, client
        ):
            self.cells.append(cell)
            print(
                f"  floor    {client:9} {cell.op:9} {cell.payload:>7} B c={cell.concurrency:<3} "
                f"{cell.ops_per_s:>9,.0f} ops/s  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                f"{cell.cpu_us_per_op:>7,.0f} CPU µs/call  RSS {cell.peak_rss_mb or 0:5.0f} MB",
                flush=True,
            )

    def _serving(
        self, argv: list[str], backend: str, dynamodb_endpoint: str | None
    ) -> AbstractContextManager[Served]:
        backend, _, client = backend.partition("-")
        settings = {"STATESTORE_DYNAMODB_CLIENT": client} if client else None
        return _service.service(
            argv, backend, self.tmp, dynamodb_endpoint, self.plan.service_log_level, settings
        )

    def _seed(self, base: str, size: int) -> None:
        """The states that GET, batchGet (`g…`) and the conditional PUT (`c…`, one per connection) read."""
        payload = self.payload_files[size].read_text()
        port = _service.port_of(base)
        _service.seed(port, f"g{size}-", self.plan.n_ids, payload, MANIFEST)
        _service.seed(port, f"c{size}-", max(self.plan.concurrencies), payload, MANIFEST)

    def service(self, argv: list[str], backend: str, dynamodb_endpoint: str | None) -> None:
        print(f"3. Service on {backend}", flush=True)
        with self._serving(argv, backend, dynamodb_endpoint) as (server, base):
            meter = Meter(server, self.background)
            try:
                for size in self.plan.sizes:
                    self._seed(base, size)
                    present, why = _service.batch_get_present(_service.port_of(base), [f"g{size}-0"])
                    if not present and why not in self.notes:
                        self.notes.append(why)
                    for op in SERVICE_OPS:
                        if op == "batchGet" and not present:
                            continue
                        for concurrency in self.plan.concurrencies:
                            spec = self._spec(base, op, size, concurrency, prefix="/states/")
                            self._cell(meter, "service", backend, op, spec, size)
            finally:
                self._peak(f"service ({backend})", meter.peak_mb)

    def profile(
        self, argv: list[str], backend: str, op: str, dynamodb_endpoint: str | None, py_spy: str
    ) -> str:
        """py-spy's summary of one server under the `op` load, at the first size and the largest
        concurrency."""
        size, concurrency = self.plan.sizes[0], max(self.plan.concurrencies)
        seconds = max(1, round(self.plan.duration))
        minimal = backend == "minimal"
        serving = _service.minimal(self.tmp) if minimal else self._serving(argv, backend, dynamodb_endpoint)
        with serving as (server, base):
            if not minimal:
                self._seed(base, size)
            spec = self._spec(base, op, size, concurrency, f"/min/{size}/" if minimal else "/states/")
            stacks = self.plan.results_dir / "profiles" / f"{backend}-{op}-{size}-c{concurrency}.collapsed"
            stacks.parent.mkdir(parents=True, exist_ok=True)
            # The load outlasts the sampling, which starts once the load is under way.
            loaded = replace(spec, duration=seconds + 2)
            return _profile.sample(py_spy, server.pid, loaded, self.wrk, seconds, stacks)


def _section(runner: Runner, what: str, action: Callable[..., None], *args: object) -> None:
    """Run one part; a failure is reported and the run goes on with the other parts."""
    try:
        action(*args)
    except (RuntimeError, OSError, ValueError) as exc:
        runner.failed = True
        runner.notes.append(f"{what} failed: {str(exc).strip().splitlines()[0][:300]}")
        print(f"ERROR {what}: {exc}", file=sys.stderr, flush=True)


def _load_generator(plan: Plan) -> tuple[str | None, list[str]]:
    """wrk, unless the options say otherwise or it is missing; and the note that says so."""
    if plan.load == "python":
        return None, []
    wrk, why = _wrk.locate()
    if wrk is not None:
        return wrk, []
    if plan.load == "wrk":
        raise CannotRun(why)
    return None, [
        f"wrk unavailable ({why}): load came from the Python fallback generator, which "
        "shares the cores with the server; its ops/s and latencies understate the server"
    ]


@contextmanager
def _runner(plan: Plan) -> Iterator[Runner]:
    """A runner with a temp dir of its own; its servers are stopped and the dir removed when it ends,
    on SIGTERM too."""
    wrk, notes = _load_generator(plan)
    with (
        sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="statestore-bench-") as tmp_name,
        ExitStack() as servers,
    ):
        runner = Runner(plan, wrk, Path(tmp_name), servers)
        runner.notes.extend(notes)
        yield runner


def run(plan: Plan) -> int:
    started = time.monotonic()
    with _runner(plan) as runner:
        meta = _environment.describe(runner.wrk, plan.duration, plan.floor_duration)
        argv = _service.service_argv(plan.service_cmd)
        if argv is None:
            runner.notes.append("service not measured: this checkout has no app.cli yet")
        else:
            meta["service command"] = " ".join(argv[-3:] if argv[0] == sys.executable else argv)
        if plan.runs > 1:
            meta["runs"] = f"{plan.runs}, one after another; each cell is the median of its runs"
        dynamodb_endpoint = None
        served_backends = plan.backends if argv is not None else ()  # no `app.cli`: nothing to serve
        for number in range(1, plan.runs + 1):
            if plan.runs > 1:
                print(f"== run {number} of {plan.runs}", flush=True)
            _section(runner, "HTTP ceiling", runner.ceiling)
            if number == 1 and any(backend.startswith("dynamodb") for backend in plan.backends):
                dynamodb_endpoint = runner.dynalite(meta)
            if dynamodb_endpoint is not None:
                for client in ("aioboto3", "lean"):
                    _section(runner, f"{client} floor", runner.floor, dynamodb_endpoint, client)
            for backend in served_backends:
                if backend.startswith("dynamodb") and dynamodb_endpoint is None:
                    continue
                _section(runner, f"service on {backend}", runner.service, argv, backend, dynamodb_endpoint)
    cells = combined(runner.cells)
    concurrency = 32 if 32 in plan.concurrencies else max(plan.concurrencies)
    busy = max((c.extra.get("background_cores", 0.0) for c in cells), default=0.0)
    if busy > BUSY_MACHINE_CORES:
        runner.notes.insert(
            0,
            f"WARNING: other programs on this machine used up to {busy:.2f} cores during the "
            "cells (column 'others'): throughput and latency figures are skewed; rerun on a "
            "quiet machine",
        )
    verdicts = evaluate(cells, runner.peaks, plan.concurrencies)
    meta["wall time"] = f"{time.monotonic() - started:.0f} s"
    report = _report.write(plan.results_dir, cells, verdicts, runner.peaks, meta, runner.notes, concurrency)
    print()
    for note in runner.notes:
        print(f"NOTE {note}")
    for verdict in verdicts:
        print(verdict.line())
    print(f"report: {report} (chart: {report.with_name('chart.png')})")
    if runner.failed:
        return 2
    return 1 if plan.strict and any(v.status == "FAIL" for v in verdicts) else 0


def profile(plan: Plan, backend: str, op: str) -> int:
    py_spy = _profile.py_spy()
    if py_spy is None:
        raise CannotRun("py-spy not found: pip install -e '.[bench]'")
    argv = _service.service_argv(plan.service_cmd)
    if argv is None and backend != "minimal":
        raise CannotRun("this checkout has no app.cli")
    with _runner(plan) as runner:
        endpoint = runner.dynalite({}) if backend == "dynamodb" else None
        if backend == "dynamodb" and endpoint is None:
            raise CannotRun(runner.notes[-1])
        summary = runner.profile(argv or [], backend, op, endpoint, py_spy)
    for note in runner.notes:
        print(f"NOTE {note}")
    print(summary)
    return 0


def _isolate_environment() -> None:
    """Every process the run starts takes its settings from the run alone: the caller's STATESTORE_* and
    AWS_* variables are dropped, and the fake AWS configuration that dynalite accepts is set."""
    for name in [name for name in os.environ if name.startswith(("STATESTORE_", "AWS_"))]:
        del os.environ[name]
    os.environ.update(aws_config.AWS_ENV)


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    _isolate_environment()
    try:
        return run(plan) if plan.profile is None else profile(plan, *plan.profile)
    except CannotRun as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every child process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
