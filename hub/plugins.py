"""The plugin host. Plugins come from the `hub` entry-point group — the built-in connectors in
`plugins/` and remote signing in `video/` exactly like a third party's — and only those on the
allowlist load: a stray installed package must not become a bank connector.

The allowlist is `HUB_PLUGINS` (comma-separated entry-point names), else the `plugins:` list in
hub.yaml, else the built-in plugins below. The opened `Hub` owns one `PluginHost`, made once
(`hub.plugins`); processes that have no hub home yet (`hub plugins list` before `hub init`)
make their own from the allowlist alone."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import pluggy

from hub import hookspecs

if TYPE_CHECKING:
    from hub.connectors import Connector

GROUP = "hub"
# What the product turns on when hub.yaml says nothing. The sandbox (simulated department systems
# for the demo and the tests) is not among them: a home turns it on by listing it.
BUILT_IN = ("oidc", "rest", "sftp", "soap", "video")


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name
    module: str
    distribution: str
    version: str
    loaded: bool
    registers: tuple[str, ...] = field(default_factory=tuple)  # hook names it implements
    connector_types: tuple[str, ...] = field(default_factory=tuple)


def allowlist(configured: list[str] | None = None) -> set[str]:
    env = os.environ.get("HUB_PLUGINS")
    if env is not None:
        return {n.strip() for n in env.split(",") if n.strip()}
    return set(configured) if configured is not None else set(BUILT_IN)


@cache
def _entry_points() -> tuple[tuple[importlib.metadata.EntryPoint, str, str], ...]:
    """(entry point, distribution, version) in the `hub` group, by name. The installed
    distributions do not change while a process runs; listing them reads hundreds of files."""
    found: dict[str, tuple[importlib.metadata.EntryPoint, str, str]] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            # the same distribution found twice on sys.path: the first wins, as imports do
            if ep.group == GROUP and ep.name not in found:
                found[ep.name] = (ep, dist.metadata["Name"], dist.version)
    return tuple(found[name] for name in sorted(found))


class PluginHost:
    """One pluggy manager with the allowed plugins registered, and what each registers."""

    def __init__(self, allowed: set[str] | frozenset[str]):
        self.allowed = frozenset(allowed)
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        for ep, _, _ in _entry_points():
            if ep.name in self.allowed:
                self.pm.register(ep.load(), name=ep.name)
        by_plugin = self._collect_connectors()
        infos = []
        for ep, dist_name, version in _entry_points():
            plugin = self.pm.get_plugin(ep.name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])) if plugin else ()
            types = tuple(sorted(by_plugin.get(ep.name, [])))
            infos.append(PluginInfo(ep.name, ep.value, dist_name, version, plugin is not None, hooks, types))
        self.infos: tuple[PluginInfo, ...] = tuple(infos)

    @classmethod
    def configured(cls, configured: list[str] | None) -> PluginHost:
        """The host for hub.yaml's `plugins:` list (None: the built-ins), HUB_PLUGINS first."""
        return cls(allowlist(configured))

    @classmethod
    def empty(cls) -> PluginHost:
        """No plugins: for a process that never talks to another system (an ingest worker)."""
        return cls(frozenset())

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook

    @property
    def connector_types(self) -> dict[str, type[Connector]]:
        """Connector classes the loaded plugins registered, by type name."""
        return dict(self._connectors)

    def why_no_type(self, type_name: str) -> str:
        """Why no loaded plugin provides connector type `type_name`, for the connection that
        names it: a plugin that is installed but not in the allowlist (its code is not imported
        to find out what it would register: the allowlist decides what runs), or none installed."""
        idle = sorted(i.name for i in self.infos if not i.loaded)
        if type_name.replace("-", "_") in {n.replace("-", "_") for n in idle}:
            return (
                f"插件 {type_name} 已安装但未启用，请加入 hub.yaml 的 plugins 或 HUB_PLUGINS "
                f"(plugin {type_name} is installed but not allowed)"
            )
        hint = f"; 已安装未启用 installed but not allowed: {', '.join(idle)}" if idle else ""
        return f"未安装提供该类型的插件 (no installed and allowed plugin provides type {type_name}){hint}"

    def loaded(self, name: str) -> bool:
        return self.pm.has_plugin(name)

    def _implements(self, plugin: object, hook: str) -> bool:
        return any(caller.name == hook for caller in self.pm.get_hookcallers(plugin) or [])

    def each(self, hook: str) -> Iterator[tuple[str, Callable[..., list[Any]]]]:
        """(plugin name, the hook of that plugin alone) for each loaded plugin implementing
        `hook`: to tell whose answer is whose, or to keep one plugin's failure from stopping
        the others (shutdown)."""
        for plugin in self.pm.get_plugins():
            if not self._implements(plugin, hook):
                continue
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            yield self.pm.get_name(plugin) or "?", self.pm.subset_hook_caller(hook, remove_plugins=others)

    def _collect_connectors(self) -> dict[str, list[str]]:
        """Each plugin's connector types (asked one plugin at a time, so each type is known by
        the plugin that registered it), kept by type name; a name registered twice is refused."""
        from hub.connectors import Connector  # the contract module imports nothing of ours back

        self._connectors: dict[str, type[Connector]] = {}
        by_plugin: dict[str, list[str]] = {}
        for plugin_name, register in self.each("register_connectors"):
            for classes in register():
                for cls in classes or ():
                    if not (isinstance(cls, type) and issubclass(cls, Connector)):
                        raise TypeError(f"plugin {plugin_name}: {cls!r} is not a Connector")
                    if cls.type in self._connectors and self._connectors[cls.type] is not cls:
                        raise ValueError(f"plugin {plugin_name}: connector type {cls.type!r} registered twice")
                    self._connectors[cls.type] = cls
                    by_plugin.setdefault(plugin_name, []).append(cls.type)
        return by_plugin
