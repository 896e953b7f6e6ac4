"""dynalite, the DynamoDB-compatible server of the benchmark: installed with npm, run from a temp dir."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import botocore.session

from benchmarks import aws_config
from benchmarks._processes import LOOPBACK, Child, Children, free_port, run_tool

PACKAGE = "dynalite@4"


def cli_path(work_dir: Path) -> Path:
    return work_dir / "node_modules" / "dynalite" / "cli.js"


def locate(work_dir: Path, install: bool) -> tuple[Path | None, str]:
    """dynalite's cli.js (npm-installing it into `work_dir` if allowed), or None and the reason."""
    cli = cli_path(work_dir)
    if cli.exists():
        return cli, ""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        return None, "node/npm not found"
    if not install:
        return None, f"dynalite is not installed in {work_dir} (installs are off)"
    work_dir.mkdir(parents=True, exist_ok=True)
    result = run_tool(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(work_dir), PACKAGE], timeout=300
    )
    if result.returncode != 0 or not cli.exists():
        return None, f"npm install {PACKAGE} failed: {result.stderr.strip()[-300:]}"
    return cli, ""


def version(cli: Path) -> str:
    try:
        return str(json.loads((cli.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def start(children: Children, cli: Path, log_dir: Path) -> tuple[Child, str]:
    """Start dynalite on a free loopback port with its data in a fresh temp dir; create the table."""
    data_dir = tempfile.mkdtemp(prefix="dynalite-", dir=log_dir)
    port = free_port()
    argv = [
        "node",
        str(cli),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--path",
        data_dir,
        "--createTableMs",
        "0",
    ]
    child = children.start("dynalite", argv, log_dir / "dynalite.log")
    endpoint = f"http://{LOOPBACK}:{port}"
    child.wait_http(endpoint + "/", timeout=30)
    create_table(endpoint, aws_config.TABLE)
    return child, endpoint


def create_table(endpoint: str, table: str) -> None:
    client: Any = botocore.session.get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=aws_config.REGION,
        aws_access_key_id=aws_config.AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_config.AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "PersistenceID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PersistenceID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    for _ in range(100):
        if client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
