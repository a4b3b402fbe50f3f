"""The `oidc` plugin's entry point for tests run before the shared development install has been
refreshed (`pip install -e .` reads pyproject's entry points once): a dist-info naming it on a
path of its own, exactly as an installed distribution would, so the hub still finds the plugin
only through an entry point. Nothing is done when the installed metadata already lists it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub import plugins


@contextmanager
def oidc_entry_point(folder: Path) -> Iterator[None]:
    plugins._entry_points.cache_clear()
    if any(ep.name == "oidc" for ep, _, _ in plugins._entry_points()):
        yield
        return
    info = folder / "tongban_hub_oidc_dev-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tongban-hub-oidc-dev\nVersion: 0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hub]\noidc = plugins.oidc\n", encoding="utf-8")
    sys.path.insert(0, str(folder))
    plugins._entry_points.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        plugins._entry_points.cache_clear()
