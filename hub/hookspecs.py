"""The plugin contract: what a plugin (built-in or third-party) may add to the hub.

Hooks register and describe; I/O lives in the connector methods they register. A plugin is a
module or object with `@hookimpl` functions, published under the `hub` entry-point group:

    [project.entry-points.hub]
    my_bank = "my_bank_plugin"
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("hub")
hookimpl = pluggy.HookimplMarker("hub")


@hookspec
def register_connectors(register: Any) -> None:
    """Call `register(ConnectorClass)` for each connector type the plugin provides.
    The class names its `type` and its configuration model `Spec` (see hub.connectors)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `hub` CLI (a typer.Typer), e.g. `hub sandbox`."""


@hookspec
def on_application_event(application_number: str, event: dict[str, Any]) -> None:
    """Called after an application event is committed (notifications, mirrors). Must not raise."""


@hookspec
def register_routes(app: Any, hub: Any) -> None:
    """Add routes and pages to the web app (`hub serve`): a FastAPI app over `hub`. Remote
    signing (video/) comes in this way; the core's web layer knows nothing of it."""


@hookspec
def read_id_card(desk: str) -> dict[str, Any] | None:
    """What the ID-card reader at `desk` has just read (name, id_number, address, issuer,
    valid_until, photo_sha256), for the officer's identity check in remote signing; None when
    the plugin has no reader there. The first answer that is not None is used."""
