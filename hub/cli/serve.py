"""`hub serve`: the web UI and REST API, with limits on slow clients (docs/operations.md)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from hub.cli.common import fail, open_hub
from hub.web import timeouts


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback by default")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (PostgreSQL for more than one)")] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            envvar="HUB_FORWARDED_ALLOW_IPS",
            help="Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For/-Proto are believed",
        ),
    ] = None,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds a client has to send a request's headers", min=0.1)
    ] = timeouts.HEADER_TIMEOUT,
    body_timeout: Annotated[
        float, typer.Option("--body-timeout", help="Seconds a client has to send a request body in all", min=0.1)
    ] = timeouts.BODY_TIMEOUT,
    body_idle_timeout: Annotated[
        float, typer.Option("--body-idle-timeout", help="Seconds a request body may pause", min=0.1)
    ] = timeouts.BODY_IDLE_TIMEOUT,
    limit_concurrency: Annotated[
        int, typer.Option("--limit-concurrency", help="Connections per worker process; beyond them: 503", min=1)
    ] = timeouts.LIMIT_CONCURRENCY,
    http: Annotated[str, typer.Option("--http", help="HTTP parser: auto, httptools or h11", hidden=True)] = "auto",
) -> None:
    """Serve the web UI and the REST API (/api/v1, schema at /openapi.json)."""
    import uvicorn

    from hub.logs import uvicorn_log_config
    from hub.web import server

    level, log_format = ctx.meta.get("hub.logging", (logging.WARNING, "text"))
    hub = open_hub(ctx)
    if workers > 1 and hub.engine.dialect.name == "sqlite":
        fail("more than one worker needs PostgreSQL (SQLite has one writer)")
    hub.close()
    os.environ["HUB_HOME"] = str(hub.settings.home)
    # read by the protocol and the middleware in every worker process (hub.web.server)
    os.environ["HUB_HEADER_TIMEOUT"] = str(header_timeout)
    os.environ["HUB_BODY_TIMEOUT"] = str(body_timeout)
    os.environ["HUB_BODY_IDLE_TIMEOUT"] = str(body_idle_timeout)
    try:
        protocol = server.protocol(http)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"通办枢纽 serving on http://{host}:{port}/  (API: /api/v1, schema: /openapi.json)")
    uvicorn.run(
        "hub.web.asgi:app",
        host=host,
        port=port,
        workers=workers,
        # uvicorn's own and access logs (at --log-level: INFO shows each request) and, in every
        # worker process, the app's: one format, request ids, ID numbers masked
        log_config=uvicorn_log_config(level, log_format),
        # behind a reverse proxy the client's address (login throttling, audit) comes from its
        # X-Forwarded-For — believed only from the proxies named; otherwise never
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "",
        server_header=False,
        # slowloris: headers within --header-timeout (the protocol class), bodies within
        # --body-timeout (a middleware), at most --limit-concurrency connections, then 503
        http=protocol,
        limit_concurrency=limit_concurrency,
    )
