"""A hub home: the working directory holding settings, catalogue, calendar, connections,
materials and (by default) the SQLite database. `hub init DIR` writes one from the samples."""

from __future__ import annotations

import shutil
from pathlib import Path

from hub.errors import HubError
from hub.settings import SETTINGS_FILE

SAMPLE_ENTRIES = [
    "hub.yaml",
    "departments.yaml",
    "desks.yaml",
    "catalog",
    "calendar",
    "connections",
    "partners",
    "licences.yaml",
]


def sample_config_dir() -> Path:
    """The shipped sample configuration: inside the wheel, or the repository's config/."""
    packaged = Path(__file__).parent / "_sample_config"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / "config"
    if (source / SETTINGS_FILE).is_file():
        return source
    raise HubError("找不到示例配置 (sample configuration not found in the installation)")


def write_home(target: Path, *, force: bool = False) -> Path:
    target = Path(target).expanduser().resolve()
    if (target / SETTINGS_FILE).exists() and not force:
        raise HubError(f"{target} 已是工作目录；如需覆盖配置请加 --force (already a hub home; use --force)")
    target.mkdir(parents=True, exist_ok=True)
    sample = sample_config_dir()
    for name in SAMPLE_ENTRIES:
        src, dst = sample / name, target / name
        if src.is_dir():
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.db", "*.db-*", "__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dst)
    (target / "materials").mkdir(exist_ok=True)
    return target
