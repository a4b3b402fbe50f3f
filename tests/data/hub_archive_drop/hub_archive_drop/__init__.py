"""The plugin's hooks, and nothing else (the code lives beside them)."""

from hub.hookspecs import hookimpl
from hub_archive_drop.connector import ArchiveDrop


@hookimpl
def register_connectors():
    return [ArchiveDrop]
