"""The `rest` connector plugin: department systems with a JSON HTTP API (e.g. 医保经办系统).

Modules: `spec` (configuration), `signing` (HMAC request signatures), `connector` (RestConnector).
This module holds only the hook implementations."""

from __future__ import annotations

from hub.hookspecs import hookimpl
from plugins.rest.connector import RestConnector


@hookimpl
def register_connectors() -> list[type[RestConnector]]:
    return [RestConnector]
