"""`statestore`: serve the API, create the DynamoDB table, sweep the large states' bucket, print the OpenAPI
document."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import logging.config
import os
import signal
import socket
import sys
from collections.abc import Sequence

from app import __version__
from app.errors import BackendUnavailable, ProblemError, TableUnusable
from app.settings import ENV_PREFIX, Settings, SettingsError, load_settings

_FLAGS = ("host", "port", "backend", "log_level")
"""The settings `statestore serve` also takes as flags (`--log-level` for `log_level`)."""


def _serve(settings: Settings, workers: int) -> None:
    import uvicorn

    from app.http.server import UVICORN_OPTIONS
    from app.main import load_types
    from app.observability.logging import log_config
    from app.observability.multiprocess import shared_metrics_directory

    logging_config = log_config(settings.log_level)
    logging.config.dictConfig(logging_config)
    load_types(settings)
    _check_address(settings.host, settings.port)
    check_backend(settings)

    # uvicorn re-raises the stop signal once it has shut down cleanly; a requested stop is a success.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    with shared_metrics_directory(workers):
        uvicorn.run(
            "app.main:app",
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=settings.log_level,
            log_config=logging_config,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            **UVICORN_OPTIONS,
        )


def _check_address(host: str, port: int) -> None:
    """Stop with one line if the address cannot be listened on, before uvicorn starts the app only to fail
    binding it."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror}", field="host") from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            try:
                probe.bind(address)
            except OSError as exc:
                raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def check_backend(settings: Settings) -> None:
    """Open the backend once and ping it, so a misconfiguration stops start-up with one line; an outage
    may pass, and is left to the app, which starts, says so, and reports it on /readyz until then."""
    from app.main import open_backend

    async def check() -> None:
        async with open_backend(settings) as store:
            await store.ping()

    try:
        asyncio.run(check())
    except TableUnusable:
        raise
    except BackendUnavailable:
        pass
    finally:
        # botocore's session, whose loader keeps every service model it loaded, lives in reference cycles.
        # Collected now, it is gone before the app opens its own; left to the collector, both sets of models
        # are live at once, and the heap keeps that peak for the life of the process.
        gc.collect()


async def _create_table(settings: Settings) -> str:
    from app.main import unusable_setting
    from app.states.model import Attribute
    from app.store import StoreConfigurationError
    from app.store.dynamodb import DynamoDBStore

    try:
        async with DynamoDBStore.open(
            settings.dynamodb_table, settings.endpoint_url, client=settings.dynamodb_client
        ) as store:
            created = await store.create_table()
            expiry_warning = await store.enable_time_to_live()
    except StoreConfigurationError as exc:
        raise unusable_setting(exc) from None
    if expiry_warning is not None:  # the table serves all the same: a warning, not a failure
        print(f"statestore: warning: {expiry_warning}", file=sys.stderr)
        expiry = ""
    else:
        expiry = f", with time to live on {Attribute.EXPIRES_AT}"
    return (
        f"table {settings.dynamodb_table} {'created' if created else 'already exists'} and is ACTIVE{expiry}"
    )


async def _sweep_large_states(settings: Settings, grace_seconds: float) -> str:
    from app.main import unusable_setting
    from app.store import StoreConfigurationError
    from app.store.dynamodb import DynamoDBStore

    try:
        async with DynamoDBStore.open(
            settings.dynamodb_table,
            settings.endpoint_url,
            client=settings.dynamodb_client,
            large_states_bucket=settings.large_states_bucket,
            large_states_prefix=settings.large_states_prefix,
            s3_endpoint_url=settings.s3_endpoint,
        ) as store:
            swept = await store.sweep_large_states(grace_seconds)
    except StoreConfigurationError as exc:
        raise unusable_setting(exc) from None
    where = f"bucket {settings.large_states_bucket}, prefix {settings.large_states_prefix!r}"
    return (
        f"{where}: {swept.listed} objects, {swept.referenced} pointed to, {swept.deleted} deleted,"
        f" {swept.young} unreferenced but younger than {grace_seconds:g} s kept"
    )


def _openapi(settings: Settings) -> str:
    from app.main import create_app

    return json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"


def _is_connection_failure(error: BaseException | None) -> bool:
    from botocore.exceptions import BotoCoreError

    return isinstance(error, BotoCoreError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statestore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"statestore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (STATESTORE_HOST)")
    serve.add_argument("--port", type=int, help="bind port (STATESTORE_PORT)")
    serve.add_argument("--backend", choices=["sqlite", "dynamodb"], help="STATESTORE_BACKEND")
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="STATESTORE_LOG_LEVEL"
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    commands.add_parser("create-table", help="create the DynamoDB table and wait until it is ACTIVE")
    commands.add_parser("openapi", help="print the OpenAPI document")
    sweep = commands.add_parser(
        "sweep-large-states",
        help="delete the S3 objects of large states that no item points to any more",
    )
    sweep.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        help="keep unreferenced objects younger than this: their write may still commit (default 3600)",
    )
    return parser


_ON_DYNAMODB = {
    "create-table": "creates the DynamoDB table; STATESTORE_BACKEND is {backend}, which needs none"
    " (set STATESTORE_BACKEND=dynamodb to create it)",
    "sweep-large-states": "sweeps the bucket of a DynamoDB table's large states;"
    " STATESTORE_BACKEND is {backend}",
}
"""The commands for the DynamoDB backend alone, and what each says on another."""


def main(argv: Sequence[str] | None = None) -> None:
    arguments = _parser().parse_args(argv)
    overrides = {name: value for name in _FLAGS if (value := getattr(arguments, name, None)) is not None}
    # Workers re-read the environment, so flags travel there rather than as arguments.
    os.environ.update({f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in overrides.items()})
    try:
        settings = load_settings()
        if arguments.command == "serve":
            _serve(settings, arguments.workers)
        elif arguments.command in _ON_DYNAMODB:
            if settings.backend != "dynamodb":
                refusal = _ON_DYNAMODB[arguments.command].format(backend=settings.backend)
                sys.exit(f"statestore: {arguments.command} {refusal}")
            if arguments.command == "create-table":
                logging.basicConfig(level=logging.ERROR, format="statestore: %(message)s")
                print(asyncio.run(_create_table(settings)))
            else:
                logging.basicConfig(level=logging.WARNING, format="statestore: %(message)s")
                print(asyncio.run(_sweep_large_states(settings, arguments.grace_seconds)))
        else:
            sys.stdout.write(_openapi(settings))
    except SettingsError as exc:
        if exc.field in overrides:
            sys.exit(f"statestore: invalid value for --{exc.field.replace('_', '-')}: {exc.reason}")
        sys.exit(f"statestore: {exc}")
    except ProblemError as exc:
        # Say which endpoint failed to connect; the HTTP API never shows this, an operator needs it.
        cause = f" ({exc.__cause__})" if _is_connection_failure(exc.__cause__) else ""
        sys.exit(f"statestore: {exc.detail}{cause}")


if __name__ == "__main__":
    main()
