"""moto's DynamoDB server with its requests served one at a time.

moto_server checks a ConditionExpression and then writes without a lock, so concurrent conditional
writes can both pass; DynamoDB never allows that. Serialising moto's WSGI app makes it as atomic as
the real service, so concurrency tests fail only for our own faults.

Run as: python serial_moto.py PORT
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class SerialisedApp:
    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1])
    run_simple(
        "127.0.0.1",
        port,
        SerialisedApp(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
