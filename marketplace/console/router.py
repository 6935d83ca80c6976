"""The console's routes, under /console (/admin and /dashboard lead there): its pages behind the CSRF check
(the API's bearer-token routes are outside it, and need no token), its scripts and styles served from this origin,
and its template engine."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import get
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from marketplace.certificates.page import TEMPLATES as CERTIFICATE_TEMPLATES
from marketplace.console.books import BooksController
from marketplace.console.overview import OverviewController
from marketplace.console.pages import EXCEPTION_HANDLERS, PREFIX, money
from marketplace.console.queues import QueuesController
from marketplace.console.signing import SigningController
from marketplace.console.trades import TradesController
from marketplace.kit.money import major_units
from marketplace.web.docs import PACKAGES
from marketplace.web.principal import Access
from marketplace.wiring import Runtime

HERE = Path(__file__).resolve().parent
ASSETS_PATH = f"{PREFIX}/assets"
CSRF_COOKIE = "console_csrf"
# Scripts and styles from this origin only; ECharts and htmx set element styles as they draw.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@get(["/admin", "/dashboard"], opt={"scope": Access.PUBLIC}, sync_to_thread=False)
def to_console() -> Redirect:
    """The addresses operators try first lead to the console (its overview, or signing in)."""
    return Redirect(f"{PREFIX}/", status_code=302)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    # the console's pages, and the printable trade certificate the API answers as HTML
    loader = FileSystemLoader([HERE / "templates", CERTIFICATE_TEMPLATES])
    environment = Environment(loader=loader, autoescape=True, undefined=StrictUndefined, auto_reload=False)
    environment.globals.update(money=money, major_units=major_units)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def console_router(runtime: Runtime) -> Router:
    """The pages; every unsafe request needs the form's CSRF token matching its cookie (403 otherwise)."""
    secret = hmac.new(runtime.secret_key, b"console-csrf", hashlib.sha256).hexdigest()
    csrf = CSRFConfig(
        secret=secret,
        cookie_name=CSRF_COOKIE,
        cookie_path=PREFIX,
        cookie_httponly=True,
        cookie_samesite="strict",
        cookie_secure=runtime.settings.console_secure_cookie == "always",
    )
    return Router(
        path="/",
        route_handlers=[
            to_console,
            SigningController,
            OverviewController,
            QueuesController,
            TradesController,
            BooksController,
        ],
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        response_headers={"Content-Security-Policy": POLICY, "Referrer-Policy": "same-origin"},
        include_in_schema=False,
    )


def console_assets_router() -> Router:
    """htmx and ECharts from the npm packages installed beside the API docs' (`make` runs `npm ci`), and the
    console's own script and style."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[HERE / "static", PACKAGES / "htmx.org" / "dist", PACKAGES / "echarts" / "dist"],
        include_in_schema=False,
        name="console-assets",
    )
