"""The plugin contract: what a plugin (built-in or third-party) may add to the hub.

A plugin is a module with `@hookimpl` functions, published under the `hub` entry-point group:

    [project.entry-points.hub]
    my_bank = "my_bank_plugin"

Hooks that add something return it (as datasette's `register_routes` does); the host collects
the answers. Hooks describe and register; I/O lives in what they return (connector methods,
route handlers). The core never names a plugin: what a plugin adds to a page, a health report
or the web app comes in through these hooks. There is deliberately no "an application event
happened" hook: an in-process call after commit is lost when the process dies between the two,
so a plugin that must see every event reads the events table (or takes an outbox row)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from starlette.routing import BaseRoute

    from hub.applications import Actor
    from hub.connectors import Connector
    from hub.context import Hub
    from hub.health import Check
    from hub.identity import IdentityProvider
    from hub.settings import Settings

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")


@dataclass(frozen=True)
class PageAction:
    """A button a plugin puts in an application page's 办理 card: a POST form (with the CSRF
    token) to `href`, or a link when `method` is "get"."""

    href: str
    zh: str
    en: str
    hint_zh: str = ""
    hint_en: str = ""
    method: str = "post"
    enabled: bool = True
    disabled_zh: str = ""  # why it is disabled, as a tooltip
    disabled_en: str = ""


@dataclass(frozen=True)
class PagePanel:
    """A card a plugin adds to an application page: its own template (from a folder it
    registered with `register_template_dirs`) rendered with `context`."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)


@hookspec
def register_connectors() -> list[type[Connector]]:
    """Connector types the plugin provides (hub.connectors.Connector subclasses)."""


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add commands to the `hub` CLI, e.g. `hub sandbox`."""


@hookspec
def register_routes(hub: Hub) -> list[BaseRoute | Any]:
    """Routes `hub serve` adds: FastAPI `APIRouter`s and starlette routes (e.g. a static `Mount`)."""


@hookspec
def register_template_dirs() -> list[Path]:
    """Folders of the plugin's page templates (they may extend the hub's base.html)."""


@hookspec
def startup(hub: Hub) -> Awaitable[None] | None:
    """`hub serve` is starting; may return an awaitable, which is awaited before serving."""


@hookspec
def shutdown(hub: Hub) -> Awaitable[None] | None:
    """`hub serve` is stopping; may return an awaitable. Errors are logged, not raised."""


@hookspec
def health_checks(settings: Settings) -> list[Check]:
    """Readiness checks of what the plugin needs (keys, folders, libraries): `/readyz`, `hub doctor`."""


@hookspec
def register_metrics(hub: Hub, registry: Any) -> None:
    """Add Prometheus collectors to `/metrics`' registry (a prometheus_client CollectorRegistry)."""


@hookspec
def application_actions(hub: Hub, application: dict[str, Any], actor: Actor) -> list[PageAction]:
    """Buttons for an application's page, given its view (hub.presenters) and who is looking."""


@hookspec
def application_panels(hub: Hub, application: dict[str, Any], actor: Actor) -> list[PagePanel]:
    """Cards for an application's page, given its view and who is looking."""


@hookspec(firstresult=True)
def read_id_card(desk: str) -> dict[str, Any] | None:
    """What the ID-card reader at `desk` has just read (name, id_number, address, issuer,
    valid_until, photo_sha256), or None without a reader there; the first answer wins."""


@hookspec
def register_identity_providers() -> list[type[IdentityProvider]]:
    """Identity provider types the plugin provides (hub.identity.IdentityProvider subclasses), for
    residents signing in (网办); hub.yaml's `identity_providers:` configures instances of them."""
