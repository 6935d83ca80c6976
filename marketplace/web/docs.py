"""The API documentation pages (`/schema`: Swagger UI; `/schema/redoc`), their scripts and styles served by
the service itself from the npm packages installed beside this module (`make` runs `npm ci` there):
exchanges run in networks without internet, so nothing is loaded from a CDN."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import Method
from litestar.types.internal_types import PathParameterDefinition

from marketplace.web.messages import problem_types
from marketplace.web.problems import PROBLEM_TYPE_PREFIX

PACKAGES = Path(__file__).resolve().parent / "assets" / "node_modules"
SWAGGER_UI = PACKAGES / "swagger-ui-dist"
REDOC = PACKAGES / "redoc" / "bundles"
ASSETS_PATH = "/schema/assets"
FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>"

# The first is served at /schema itself.
RENDER_PLUGINS: list[OpenAPIRenderPlugin] = [
    SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path="/swagger",
        favicon=FAVICON,
    ),
    RedocRenderPlugin(js_url=f"{ASSETS_PATH}/redoc.standalone.js", google_fonts=False, path="/redoc", favicon=FAVICON),
    JsonRenderPlugin(),
    YamlRenderPlugin(),
]


def assets_router() -> Router:
    """The pages' scripts and styles; a missing install answers 404 for them (the JSON document still works)."""
    return create_static_files_router(
        path=ASSETS_PATH, directories=[SWAGGER_UI, REDOC], include_in_schema=False, name="docs-assets"
    )


def problem_types_description() -> str:
    """The problem types the service answers, for the document's description: type, status and title."""
    lines = [
        f"- `{PROBLEM_TYPE_PREFIX}{code}` ({status}): {title}" for code, (status, title) in problem_types().items()
    ]
    return "Errors are RFC 9457 problem details (`application/problem+json`), of these types:\n\n" + "\n".join(lines)


def operation_id(handler: HTTPRouteHandler, method: Method, path: list[str | PathParameterDefinition]) -> str:
    """A stable, readable operationId for generated clients: the controller's area and the handler's name,
    `order_pay` or `admin_order_decide` (the handler's name alone when it already names the area)."""
    owner, _, name = handler.fn.__qualname__.rpartition(".")
    area = re.sub(r"(?<!^)(?=[A-Z])", "_", owner.removesuffix("Controller")).lower()
    return name if not area or name.startswith(area) else f"{area}_{name}"
