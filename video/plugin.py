"""The remote signing plugin (远程面签): registered under the `hub` entry points like any other
plugin. It adds the signing routes and pages to `hub serve` and the `hub evidence` and
`hub signing` commands. The media needs aiortc (the `video` extra); without it the commands
still verify evidence and the web app runs without remote signing."""

from __future__ import annotations

import logging
from typing import Any

from hub.hookspecs import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def register_routes(app: Any, hub: Any) -> None:
    try:
        from video import web
    except ImportError as exc:  # aiortc or PyAV missing: everything else works
        log.warning("remote signing unavailable (%s): install the `video` extra", exc)
        return
    web.install(app, hub)


@hookimpl
def register_commands(cli: Any) -> None:
    from video.cli import evidence_app, signing_app

    cli.add_typer(evidence_app, name="evidence")
    cli.add_typer(signing_app, name="signing")
