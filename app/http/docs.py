"""The documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with their scripts, styles and icon
served by the service itself. FastAPI's own pages load these from a public CDN, and stay blank where the
service has no way out to the internet; these are the files the fastapi-offline package ships, read from
where it is installed, so that upgrading the package upgrades the pages.

The pages and their assets are outside `/states`: they need no API key, and the document leaves them out.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS = files("fastapi_offline") / "static"
# Starlette's static files answer conditional requests (ETag, 304) and refuse paths out of the folder.
_STATIC = StaticFiles(directory=str(ASSETS))

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    """What precedes the service's own paths in a URL the browser loads: a root path, behind a proxy."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


async def _swagger_ui(request: Request) -> HTMLResponse:
    prefix = _prefix(request)
    return get_swagger_ui_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{prefix}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{prefix}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{prefix}{ASSETS_PATH}/favicon.png",
    )


async def _redoc(request: Request) -> HTMLResponse:
    prefix = _prefix(request)
    return get_redoc_html(
        openapi_url=f"{prefix}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{prefix}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{prefix}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


async def _asset(request: Request) -> Response:
    """A script, style or icon of the pages: one file of the folder, by name."""
    return await _STATIC.get_response(request.path_params["name"], request.scope)


router.add_route("/docs", _swagger_ui, methods=["GET"], include_in_schema=False)
router.add_route("/redoc", _redoc, methods=["GET"], include_in_schema=False)
router.add_route(
    f"{ASSETS_PATH}/{{name}}", _asset, methods=["GET"], include_in_schema=False, name="docs-assets"
)
