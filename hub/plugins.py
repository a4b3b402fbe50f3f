"""The one plugin manager. Plugins come from the `hub` entry-point group — the built-in
connectors in `plugins/` exactly like a third party's — and only those on the allowlist load:
a stray installed package must not become a bank connector.

The allowlist is `HUB_PLUGINS` (comma-separated entry-point names), else the `plugins:` list in
hub.yaml, else the built-in plugins below."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from functools import cache

import pluggy

from hub import hookspecs

GROUP = "hub"
BUILT_IN = ("rest", "sandbox", "sftp", "soap", "video")


@dataclass(frozen=True)
class PluginInfo:
    name: str  # entry-point name
    module: str
    distribution: str
    version: str
    loaded: bool
    registers: tuple[str, ...] = field(default_factory=tuple)  # hook names it implements


def allowlist(configured: list[str] | None = None) -> set[str]:
    env = os.environ.get("HUB_PLUGINS")
    if env is not None:
        return {n.strip() for n in env.split(",") if n.strip()}
    return set(configured) if configured is not None else set(BUILT_IN)


def _entry_points() -> list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution | None]]:
    found = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == GROUP:
                found.append((ep, dist))
    return sorted(found, key=lambda pair: pair[0].name)


def make_manager(allowed: set[str]) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    seen: set[str] = set()
    for ep, dist in _entry_points():
        if ep.name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.name)
        dist_name = dist.metadata["Name"] if dist else "?"
        version = dist.version if dist else "?"
        if ep.name not in allowed:
            infos.append(PluginInfo(ep.name, ep.value, dist_name, version, loaded=False))
            continue
        plugin = ep.load()
        pm.register(plugin, name=ep.name)
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        infos.append(PluginInfo(ep.name, ep.value, dist_name, version, loaded=True, registers=hooks))
    return pm, infos


@cache
def _default(allowed: frozenset[str]) -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...]]:
    pm, infos = make_manager(set(allowed))
    return pm, tuple(infos)


def manager(configured: list[str] | None = None) -> pluggy.PluginManager:
    return _default(frozenset(allowlist(configured)))[0]


def plugin_infos(configured: list[str] | None = None) -> list[PluginInfo]:
    return list(_default(frozenset(allowlist(configured)))[1])
