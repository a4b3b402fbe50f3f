"""The remote signing plugin (远程面签): registered under the `hub` entry points like any other
plugin. It adds the signing routes and pages to `hub serve`, a button and a card to the
application page, its readiness checks and live-session gauge, and the `hub evidence` and
`hub signing` commands. The media needs aiortc (the `video` extra); without it the commands
still verify evidence and the web app runs without remote signing."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.hookspecs import PageAction, PagePanel, hookimpl

if TYPE_CHECKING:
    import typer

    from hub.applications import Actor
    from hub.context import Hub
    from hub.health import Check
    from hub.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def media_available() -> bool:
    """aiortc and PyAV are installed (the `video` extra)."""
    return importlib.util.find_spec("aiortc") is not None and importlib.util.find_spec("av") is not None


@hookimpl
def register_routes(hub: Hub) -> list[Any]:
    if not media_available():  # everything else works
        log.warning("remote signing unavailable: install the `video` extra (aiortc)")
        return []
    from video import web

    return web.routes()


@hookimpl
def register_template_dirs() -> list[Path]:
    return [HERE / "templates"]


@hookimpl
def startup(hub: Hub) -> None:
    if media_available():
        from video import web

        web.start(hub)


@hookimpl
def shutdown(hub: Hub) -> Any:
    if media_available():
        from video import web

        return web.hang_up(hub)
    return None


@hookimpl
def health_checks(settings: Settings) -> list[Check]:
    """The evidence signing key and the recordings folder; the media libraries."""
    from hub import health

    checks = [
        health.check_signing_key(settings),
        health.check_writable("recordings", settings.path(settings.signing.recordings_dir), "signing.recordings_dir"),
    ]
    if not media_available():
        checks.append(health.Check("video", False, "remote signing needs aiortc (the `video` extra)"))
    return checks


@hookimpl
def register_metrics(hub: Hub, registry: Any) -> None:
    from prometheus_client import Gauge

    from video.web import rooms

    Gauge(
        "hub_signing_sessions_live", "Remote signing sessions whose media this process runs", registry=registry
    ).set_function(lambda: len(rooms(hub)))


def _needs_signing(hub: Hub, application: dict[str, Any]) -> bool:
    return any(
        getattr(hub.catalog.items.get(p["item_code"]), "signature_required", False) for p in application["parts"]
    )


@hookimpl
def application_actions(hub: Hub, application: dict[str, Any], actor: Actor) -> list[PageAction]:
    """The officer starts a session for an item that needs a face-to-face signature."""
    from hub.lifecycle import Role

    if actor.role is not Role.officer or not _needs_signing(hub, application):
        return []
    return [
        PageAction(
            href=f"/applications/{application['number']}/signing",
            zh="发起远程面签",
            en="Start remote signing",
            hint_zh="本事项须面签：与窗口申请人远程视频连线，全程录音录像。",
            hint_en="This item needs a face-to-face signature: a recorded video call with the applicant at the desk.",
            enabled=media_available(),
            disabled_zh="本服务未启用远程面签",
            disabled_en="Remote signing is not enabled on this server",
        )
    ]


@hookimpl
def application_panels(hub: Hub, application: dict[str, Any], actor: Actor) -> list[PagePanel]:
    """The application's signing sessions, with a link to join one that is open."""
    from hub import signing

    sessions = signing.list_for(hub, application["number"], actor)
    if not sessions:
        return []
    return [PagePanel("signing_sessions.html", {"signing_sessions": sessions})]


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from video.cli import evidence_app, signing_app

    cli.add_typer(evidence_app, name="evidence")
    cli.add_typer(signing_app, name="signing")
