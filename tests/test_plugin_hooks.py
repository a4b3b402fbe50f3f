"""The built-in plugins' side of the hook contract: `register_connectors()` takes no argument and
returns the connector classes; a plugin package's `__init__` holds only hook implementations (its
code lives in modules named for what they hold)."""

from __future__ import annotations

import importlib
import inspect

import pytest

from hub.connectors import Connector
from plugins.rest.connector import RestConnector
from plugins.sftp.connector import SftpConnector
from plugins.soap.connector import SoapConnector

PLUGINS = ["plugins.rest", "plugins.soap", "plugins.sftp", "plugins.sandbox"]


@pytest.mark.parametrize(
    ("module", "types"),
    [("plugins.rest", [RestConnector]), ("plugins.soap", [SoapConnector]), ("plugins.sftp", [SftpConnector])],
)
def test_register_connectors_returns_the_classes(module: str, types: list[type[Connector]]) -> None:
    hook = importlib.import_module(module).register_connectors
    assert list(inspect.signature(hook).parameters) == []
    assert hook() == types
    assert all(issubclass(cls, Connector) for cls in types)
    assert [cls.type for cls in types] == [module.rsplit(".", 1)[1]]  # type names are unchanged


@pytest.mark.parametrize("module", PLUGINS)
def test_init_holds_only_hook_implementations(module: str) -> None:
    plugin = importlib.import_module(module)
    defined_here = [
        name
        for name, value in vars(plugin).items()
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module
    ]
    assert defined_here, f"{module} implements no hook"
    assert [name for name in defined_here if not hasattr(getattr(plugin, name), "hub_impl")] == []
