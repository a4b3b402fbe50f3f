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
    "licences.yaml",  # licence types (hub.licences)
    "notices",  # notice templates (hub.documents), ops-editable
    "appointments.yaml",  # item groups for appointments and the queue (hub.appointments)
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


def write_sandbox_seals(home: Path) -> list[str]:
    """The sample home's test CA and a test seal for the hub and each department (`hub init`), so
    notices and licences are sealed with no extra command. Not in `write_home` itself: keys and
    certificates are made once per home, not for every home the tests write. Production imports
    real seals (`hub seals import`); `hub doctor` warns about a test CA on PostgreSQL."""
    from hub.catalog import load_catalog
    from hub.seals import store
    from hub.settings import load_settings

    settings = load_settings(home)
    county = settings.county.name
    return store.make_test_seals(
        home / "seals",
        county,
        store.holders(county, load_catalog(settings.config_dir)),
        store.seal_algorithm(settings.crypto.signature),
    )
