"""The `sftp` connector plugin: department and bank systems that exchange batch files over SFTP.

Modules: `spec` (configuration), `keys` (host-key pinning, the login key), `errors` (faults as
DeliveryErrors), `client` (paramiko's SFTPClient and the private APIs it needs), `connector`
(SftpConnector: sessions and the verbs). This module holds only the hook implementations."""

from __future__ import annotations

from hub.hookspecs import hookimpl
from plugins.sftp.connector import SftpConnector


@hookimpl
def register_connectors() -> list[type[SftpConnector]]:
    return [SftpConnector]
