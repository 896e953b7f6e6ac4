"""The service with one more route, `/crash`, that fails as a bug would, on the server and log set-up of
`statestore serve`: what a test needs to see how a crash is logged.

Run from the repository as: python -m tests.support.crashing_service PORT (settings from the environment)
"""

from __future__ import annotations

import sys

import uvicorn

from app.http.server import UVICORN_OPTIONS
from app.main import create_app
from app.observability.logging import log_config
from app.settings import load_settings

CRASH_PATH = "/crash"
CRASH_MESSAGE = "a bug"


async def crash() -> None:
    raise RuntimeError(CRASH_MESSAGE)


def main(port: int) -> None:
    app = create_app(load_settings())
    app.add_api_route(CRASH_PATH, crash)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_config=log_config("info"), access_log=False, **UVICORN_OPTIONS
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
