"""The web app `hub serve` runs: the REST API under /api/v1 and the server-rendered pages, one
FastAPI application over one `Hub`. Every asset is served from hub/web/static (no CDN: county
networks often have no internet)."""

from __future__ import annotations

import inspect
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub import __version__, health, logs, secret_key
from hub.context import Hub
from hub.errors import Forbidden, HubError, IllegalTransition, InvalidInput, NotFound
from hub.lifecycle import Role
from hub.metrics import HubCollector, RequestMetrics
from hub.users import ApprovalRefused, LoginRefused
from hub.web import (
    account_pages,
    agency_pages,
    api,
    decision,
    document_pages,
    exchange,
    kit_pages,
    licence_pages,
    material_links,
    openapi,
    ops_pages,
    pages,
    queue_pages,
    resident_pages,
    status_pages,
    supervision_pages,
    worklists,
)
from hub.web.applicant_status import LookupThrottle
from hub.web.deps import CHANGE_PASSWORD, PasswordChangeRequired, optional_principal
from hub.web.query_params import UnknownParameter
from hub.web.render import add_template_dir, render_error, wants_html
from hub.web.security import Throttle
from hub.web.server import BodyTimeout

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SECRET_FILE = health.SECRET_FILE


def load_secret(hub: Hub) -> bytes:
    return secret_key.load(hub.settings)


class BodyLimit:
    """Refuse a request body larger than the uploads allow (413) before it is parsed, both by
    Content-Length and while a chunked body streams in."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _too_large(scope, send, self.max_bytes)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(scope, send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _too_large(scope, send, limit: int) -> None:
    body = f'{{"detail":"上传内容超过 {limit // (1024 * 1024)} MB 上限 (request body too large)","errors":[]}}'.encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# Pages load only the hub's own assets; no framing (clickjacking on the action buttons); the status
# link's key never leaks to another site through Referer.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


# Pages and API answers carry full ID numbers, materials, status keys and CSRF tokens: no browser,
# proxy or shared-terminal cache may keep them. Only the hub's own assets may be cached.
NO_STORE = (b"cache-control", b"no-store")
CACHEABLE_PREFIX = "/static/"


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cacheable = scope["path"].startswith(CACHEABLE_PREFIX)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                own = {k.lower() for k, _ in message.get("headers", [])}
                # a route that sets its own framing policy keeps it (a material previewed in the
                # application page's frame: same origin only); every other page gets ours
                headers = [*message.get("headers", []), *(h for h in SECURITY_HEADERS if h[0] not in own)]
                if not cacheable:
                    # replace whatever a route set: a material download must not be kept either
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"] + [NO_STORE]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Observe:
    """Outermost: gives each request its id (a sane incoming X-Request-ID, else a new one) for
    the log lines it causes and the response's X-Request-ID header, and counts it in the
    process's HTTP metrics by route template (`unmatched` for paths no route takes)."""

    def __init__(self, app, metrics: RequestMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = logs.sane_request_id(given.decode("latin-1")) or logs.new_request_id()
        logs.request_id.set(rid)  # each request runs in a task of its own: no reset needed, and the
        # server's own log of an unhandled error still carries the id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)


def is_local(request: Request) -> bool:
    """A caller on this machine, not through a proxy (a proxy on the same host forwards everyone
    from loopback, and says so in its headers)."""
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    forwarded = any(h in request.headers for h in ("forwarded", "x-forwarded-for", "x-real-ip"))
    return loopback and not forwarded


def add_operability(app: FastAPI, hub: Hub) -> None:
    """/healthz, /readyz and /metrics (docs/operations.md). Not in the API schema: they are for
    the orchestrator and Prometheus, not for systems integrating with the hub."""
    registry = CollectorRegistry()
    app.state.request_metrics = RequestMetrics(registry)
    registry.register(HubCollector(hub))
    hub.plugins.hook.register_metrics(hub=hub, registry=registry)  # e.g. remote signing's live sessions

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """Alive: answers without touching the database."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready for traffic: database, migrations, keys, stores (hub.health.readiness)."""
        checks = await run_in_threadpool(health.readiness, hub.settings, hub.engine, plugins=hub.plugins)
        bad = health.failed(checks)
        body = {"status": "fail" if bad else "ok", "failed": bad, "checks": [c.as_dict() for c in checks]}
        return JSONResponse(body, status_code=503 if bad else 200)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format. From this machine (not through a proxy) without credentials;
        otherwise an ops token (or an ops session)."""
        if not is_local(request):
            principal = await optional_principal(request)
            if principal is None:
                raise HTTPException(
                    401, "需要运维令牌 (an ops token is needed)", headers={"WWW-Authenticate": "Bearer"}
                )
            if "ops" not in principal.scopes or principal.role not in (Role.ops, Role.system):
                raise HTTPException(403, "无权访问：需要权限 ops (forbidden: needs ops)")
            if principal.must_change_password:
                raise PasswordChangeRequired()
        body = await run_in_threadpool(lambda: generate_latest(registry) + generate_latest(REGISTRY))
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


STATUS = {
    UnknownParameter: 400,
    InvalidInput: 422,
    NotFound: 404,
    Forbidden: 403,
    IllegalTransition: 409,
    LoginRefused: 401,
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Blocking work (database, file writes, fsync) runs in worker threads. Python runs one thread at
    # a time, so past a few more threads only add GIL hand-offs: 8 served a third more intake
    # requests per second than anyio's default 40 (BENCHMARKS.md, web intake).
    hub: Hub = app.state.hub
    anyio.to_thread.current_default_thread_limiter().total_tokens = hub.settings.web_threads
    for result in hub.plugins.hook.startup(hub=hub):  # e.g. remote signing recovers sessions left open
        if inspect.isawaitable(result):
            await result
    yield
    # each plugin's shutdown on its own: one plugin's failure must not keep the others from theirs
    for name, shutdown in hub.plugins.each("shutdown"):
        try:
            for result in shutdown(hub=hub):
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("plugin %s: shutdown failed", name)


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="Tongban Hub API (通办枢纽)",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; the schema at /openapi.json is what systems need
        redoc_url=None,
    )
    app.state.hub = hub
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]  # the real error answers
    app.state.secret = load_secret(hub)
    app.state.login_throttle = Throttle(hub.settings.resolved_redis_url)
    app.state.lookup_throttle = LookupThrottle(hub.settings.resolved_redis_url)  # the residents' status lookup
    add_operability(app, hub)
    app.include_router(api.router)
    app.include_router(document_pages.api)  # an application's documents over the API
    app.include_router(decision.router)  # the application page: before pages' catch-alls
    app.include_router(pages.router)
    app.include_router(worklists.router)
    app.include_router(status_pages.router)
    app.include_router(resident_pages.router)  # 网办: /my (residents signed in through an identity provider)
    app.include_router(document_pages.router)  # downloads, and the public check /d/CODE
    app.include_router(ops_pages.router)
    app.include_router(account_pages.router)
    app.include_router(supervision_pages.router)
    app.include_router(material_links.router)
    app.include_router(exchange.router)
    app.include_router(licence_pages.router)  # /l/CODE (public), /licences (staff)
    app.include_router(licence_pages.api)
    app.include_router(agency_pages.router)  # 帮代办: /agency, /help, /projects, /ops/agents
    app.include_router(agency_pages.api)
    app.include_router(kit_pages.router)  # the offline kit: /kit/…, /api/v1/kit/…
    app.include_router(queue_pages.router)  # appointments and the queue (预约 / 取号 / 叫号), the 叫号屏
    app.include_router(queue_pages.api)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:  # browsers ask for it on every page; a 404 each time filled the logs
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    # plugins' routes, pages and assets (remote signing, …), before the hub's /static mount would
    # take their /static/… paths
    for folders in hub.plugins.hook.register_template_dirs():
        for folder in folders or ():
            add_template_dir(Path(folder))
    for routes in hub.plugins.hook.register_routes(hub=hub):
        for route in routes or ():
            if isinstance(route, APIRouter):
                app.include_router(route)
            else:
                app.router.routes.append(route)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> Response:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        if isinstance(exc, LoginRefused) and exc.locked:
            status = 429
        named = isinstance(exc, (InvalidInput, ApprovalRefused))  # they name their fields
        errors = [e.as_dict() for e in exc.errors] if named else []
        if wants_html(request):
            # the page lists the fields one by one; its heading need not repeat them
            message = "提交的内容有误，请按下列提示修改 (invalid input)" if isinstance(exc, InvalidInput) else str(exc)
            return render_error(request, status, message, errors)
        return JSONResponse({"detail": str(exc), "errors": errors}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "zh": e["msg"], "en": e["msg"]}
            for e in exc.errors()
        ]
        if wants_html(request):
            return render_error(request, 422, "提交的内容有误 (invalid input)", errors)
        return JSONResponse({"detail": "提交的内容有误 (invalid input)", "errors": errors}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, exc: ValidationError) -> Response:
        """A value the core's models refuse (too long, wrong kind) that the edge let through."""
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "zh": e["msg"], "en": e["msg"]} for e in exc.errors()]
        if wants_html(request):
            return render_error(request, 422, "提交的内容有误 (invalid input)", errors)
        return JSONResponse({"detail": "提交的内容有误 (invalid input)", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}&expired=1", status_code=303)
        if isinstance(exc, PasswordChangeRequired) and wants_html(request):
            return RedirectResponse(CHANGE_PASSWORD, status_code=303)
        if wants_html(request):
            return render_error(request, exc.status_code, str(exc.detail), [])
        return JSONResponse({"detail": exc.detail, "errors": []}, status_code=exc.status_code, headers=exc.headers)

    limit = hub.settings.max_material_bytes * 10 + (1 << 20)  # ten files of the largest size, and the form
    app.add_middleware(BodyTimeout)  # type: ignore[arg-type]  # slow bodies: 408 (hub.web.server)
    app.add_middleware(BodyLimit, max_bytes=limit)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    app.add_middleware(Observe, metrics=app.state.request_metrics)  # type: ignore[arg-type]
    return app
