"""The `soap` connector plugin: department systems with a SOAP web service (e.g. 公安户籍), through zeep.

Modules: `spec` (configuration), `client` (the shared, hardened zeep Client), `connector`
(SoapConnector: message mapping, faults). This module holds only the hook implementations."""

from __future__ import annotations

from hub.hookspecs import hookimpl
from plugins.soap.connector import SoapConnector


@hookimpl
def register_connectors() -> list[type[SoapConnector]]:
    return [SoapConnector]
