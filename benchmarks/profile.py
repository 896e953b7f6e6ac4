"""Where the service's CPU goes: py-spy samples one server under one benchmark load.

`python -m benchmarks.profile --backend dynamodb --op GET --payload 200 --concurrency 32` starts the
service (or `--backend minimal` for the minimal endpoint) as the benchmark does, loads it with wrk
(or the Python fallback) and samples it with py-spy (`pip install py-spy`; needs ptrace, root here).
Writes the collapsed stacks to `--out` and prints the frames with the largest inclusive and self
shares of the samples: "inclusive" is the share of samples with the frame anywhere on the stack.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import _dynalite, _load, _service, _wrk
from benchmarks._model import LoadSpec
from benchmarks._payloads import MANIFEST, batch_size, write_payload_file
from benchmarks._processes import Children, run_tool, sigterm_as_interrupt

BENCH_DIR = Path(__file__).resolve().parent
_MODES = {"GET": "get", "PUT": "put", "CPUT": "cput", "batchGet": "batch"}
_ID_PREFIX = {"GET": "g", "PUT": "p", "CPUT": "c", "batchGet": "g"}


IDLE_LEAVES = frozenset(
    {
        "Condition.wait (threading.py)",
        "wait (threading.py)",
        "select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",  # an idle executor thread waits in a C call
    }
)
CLIENT_PACKAGES = frozenset({"aioboto3", "aiobotocore", "botocore", "aiohttp", "boto3"})


def _package(frame: str) -> str:
    """`func (botocore/auth.py)` -> `botocore`; a stdlib module (`json/encoder.py`) keeps its name."""
    where = frame.rpartition("(")[2].rstrip(")")
    return where.split("/")[0].removesuffix(".py") if where else "?"


def summarize(collapsed: Path, top: int = 25) -> str:
    """Shares of the busy samples in py-spy's raw (collapsed) output; idle thread waits are left out.

    "inclusive" counts a sample for every distinct frame (or package) on its stack, "self" for its leaf;
    "aioboto3 client" is the share of samples inside any client package frame.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    own_package: collections.Counter[str] = collections.Counter()
    in_package: collections.Counter[str] = collections.Counter()
    total = client = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or frames[-1] in IDLE_LEAVES:
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        own_package[_package(frames[-1])] += count
        packages = {_package(frame) for frame in frames}
        client += count * bool(packages & CLIENT_PACKAGES)
        for package in packages:
            in_package[package] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no busy samples"

    def share(n: int) -> str:
        return f"{100 * n / total:6.1f} %"

    lines = [f"{total} busy samples; inside the aioboto3 client (any client package frame): {share(client)}"]
    lines += ["", "self by package"] + [f"{share(n)}  {p}" for p, n in own_package.most_common(12)]
    lines += ["", "inclusive by package"] + [f"{share(n)}  {p}" for p, n in in_package.most_common(16)]
    lines += ["", "inclusive by frame"] + [f"{share(n)}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self by frame"] + [f"{share(n)}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "dynamodb", "minimal"), default="dynamodb")
    parser.add_argument("--op", choices=tuple(_MODES), default="GET")
    parser.add_argument("--payload", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "profiles")
    parser.add_argument("--service-cmd")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    wrk, _ = _wrk.locate(install=False)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{args.backend}-{args.op}-{args.payload}-c{args.concurrency}"
    collapsed = args.out / f"{name}.collapsed"
    with sigterm_as_interrupt(), Children() as children, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        payload_file = write_payload_file(tmp, args.payload)
        if args.backend == "minimal":
            server, base = _service.start_minimal(children, tmp)
            prefix = f"/min/{args.payload}/"
        else:
            endpoint = None
            if args.backend == "dynamodb":
                cli, why = _dynalite.locate(BENCH_DIR / ".work", install=True)
                if cli is None:
                    print(why, file=sys.stderr)
                    return 2
                _, endpoint = _dynalite.start(children, cli, tmp)
            argv_ = _service.service_argv(args.service_cmd)
            if argv_ is None:
                print("no app.cli in this checkout", file=sys.stderr)
                return 2
            server, base = _service.start_service(children, argv_, args.backend, tmp, endpoint, "warning")
            port = urlsplit(base).port or 80
            _service.seed(port, f"g{args.payload}-", 64, payload_file.read_text(), MANIFEST)
            _service.seed(port, f"c{args.payload}-", args.concurrency, payload_file.read_text(), MANIFEST)
            prefix = "/states/"
        spec = LoadSpec(
            base_url=base,
            mode=_MODES[args.op],
            prefix=prefix,
            payload_file=payload_file,
            id_prefix=f"{_ID_PREFIX[args.op]}{args.payload}-",
            connections=args.concurrency,
            duration=args.duration + 2,
            batch_size=batch_size(args.payload),
            manifest=MANIFEST,
        )
        load = threading.Thread(target=_load.run, args=(spec, wrk), daemon=True)
        load.start()
        time.sleep(1)
        spy = run_tool(
            [
                py_spy,
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(args.duration),
                "-r",
                "250",
                "-f",
                "raw",
                "--nolineno",
                "-o",
                str(collapsed),
            ],
            timeout=args.duration + 60,
        )
        load.join()
    if spy.returncode != 0 or not collapsed.exists():
        print(f"py-spy failed: {spy.stderr.strip()[-500:]}", file=sys.stderr)
        return 2
    summary = summarize(collapsed)
    (args.out / f"{name}.summary.txt").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
