"""The documentation pages work with no way out of the machine: `/docs` (Swagger UI) and `/redoc` (ReDoc)
load every script, style and icon from the service, which serves them to callers without an API key.

The browser test opens each page in Debian's headless Chromium against `statestore serve`, with every host
name but 127.0.0.1 unresolvable, and reads the operations off the page as rendered."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.api import batch, listing, probes, states
from app.http import docs
from app.http.docs import ASSETS, ASSETS_PATH
from app.main import create_app
from app.settings import Settings
from support.processes import REPO, serving_sqlite
from support.tools import require

KEY = "docs-pages-test-key"
PAGES = ["/docs", "/redoc"]
# Summaries of operations: on the page only once its script has fetched the document and rendered it.
SUMMARIES = ("Write the latest state", "Read up to 1000 states at once")
_NAMED_URL = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    # Time as the page sees it, which waits for its requests: the DOM is dumped once the page is idle.
    "--virtual-time-budget=15000",
]
BROWSER_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("docs") / "states.db"
    with serving_sqlite(database, {"STATESTORE_API_KEYS": KEY}) as (served, _):
        yield served


def named_urls(page: str) -> list[str]:
    return [src or quoted for src, quoted in _NAMED_URL.findall(page)]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_loads_only_the_services_own_files_and_needs_no_key(url: str, page: str) -> None:
    html = httpx.get(f"{url}{page}")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    urls = named_urls(html.text)
    assert f"{ASSETS_PATH}/favicon.png" in urls
    for named in urls:
        assert named.startswith("/"), named
        assert not named.startswith("//"), named
        assert httpx.get(f"{url}{named}").status_code == 200, named


def test_the_assets_are_the_files_fastapi_offline_ships(url: str) -> None:
    shipped = [asset for asset in ASSETS.iterdir() if asset.is_file()]
    assert {asset.name for asset in shipped} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "redoc.standalone.js",
    }
    for asset in shipped:
        assert httpx.get(f"{url}{ASSETS_PATH}/{asset.name}").content == asset.read_bytes(), asset.name


def test_the_pages_are_not_operations_of_the_document() -> None:
    paths = json.loads((REPO / "openapi" / "openapi.json").read_text())["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_lists_the_operations_in_a_browser_without_internet(
    url: str, page: str, tmp_path: Path
) -> None:
    chromium = require("chromium", "install it with `apt-get install -y chromium`")
    rendered = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "--dump-dom", f"{url}{page}"],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_SECONDS,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    missing = [summary for summary in SUMMARIES if summary not in rendered.stdout]
    assert not missing, f"{page} rendered without {missing}"


def test_an_asset_answers_its_etag_with_a_304_and_an_unknown_one_is_a_404_problem(url: str) -> None:
    asset = f"{url}{ASSETS_PATH}/swagger-ui.css"
    etag = httpx.get(asset).headers["etag"]
    assert httpx.get(asset, headers={"If-None-Match": etag}).status_code == 304
    missing = httpx.get(f"{url}{ASSETS_PATH}/absent.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{url}{ASSETS_PATH}/../pyproject.toml").status_code == 404


def test_every_route_is_registered_once_through_a_router(settings_for: Callable[..., Settings]) -> None:
    """The pages join as the API's routes do: each router's routes, in the routers' order, on the app's own
    router after FastAPI's own document, and no route twice."""
    app = create_app(settings_for("sqlite"))
    routers = (states.router, listing.router, batch.router, probes.router, docs.router)
    registered = [route for route in app.router.routes if getattr(route, "path", None) != app.openapi_url]
    assert registered == [route for router in routers for route in router.routes]
    paths = [
        (getattr(route, "path", ""), sorted(getattr(route, "methods", None) or ()))
        for r in routers
        for route in r.routes
    ]
    assert len(paths) == len({(path, tuple(methods)) for path, methods in paths}), paths
