"""The sandbox partner hub (跨省通办): 福鼎市 (Fujian) as a second, real hub home beside a 泰顺
home — its own settings, catalogue, database and exchange key — and the trust between the two
set up as two authorities would: each makes its key, gives the other its public half, and lists
what it accepts from the other (docs/cross-region.md, "Trust between two authorities").

Used by `hub sandbox partner-home`, the demo, the two-hub tests and the exchange benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from hub.context import utcnow
from hub.partners import keys
from hub.settings import load_settings

TEMPLATE = Path(__file__).parent / "partner_home" / "fuding"


def write_partner_home(target: Path) -> Path:
    """The 福鼎 home at `target` (an existing one is kept: its key and database are its own)."""
    target = Path(target).resolve()
    if not (target / "hub.yaml").exists():
        shutil.copytree(TEMPLATE, target, dirs_exist_ok=True)
        (target / "materials").mkdir(exist_ok=True)
    return target


def _identity(home: Path) -> dict:
    settings = load_settings(home)
    path = settings.exchange_key_file.path
    key = keys.load_key(path) if path.exists() else keys.generate(path, rotate=False, now=utcnow())[0]
    return {
        "name": settings.exchange.name or settings.county.name,
        "hub_id": settings.exchange.hub_id,
        "divisions": [settings.county.division],
        "keys": [{"id": keys.public_key_id(key), "public_key": keys.public_b64(key)}],
    }


def pair(
    home_a: Path,
    url_a: str,
    home_b: Path,
    url_b: str,
    *,
    a_accepts: list[dict] | None = None,
    b_accepts: list[dict] | None = None,
    limits: dict | None = None,
) -> None:
    """Make both hubs' keys (if missing) and write each one's partner file for the other."""
    ident_a, ident_b = _identity(home_a), _identity(home_b)
    a_accepts = a_accepts if a_accepts is not None else [{"item": "GG00501000", "modes": ["proxy"]}]
    b_accepts = (
        b_accepts
        if b_accepts is not None
        else [{"item": "GG00501000", "modes": ["proxy"]}, {"item": "GG00201000", "modes": ["proxy", "joint"]}]
    )
    regions = {"350982": "福建省宁德市福鼎市", "330329": "浙江省温州市泰顺县"}
    for home, other, url, accepts in ((home_a, ident_b, url_b, a_accepts), (home_b, ident_a, url_a, b_accepts)):
        doc = {
            "name": other["name"].removesuffix("通办枢纽") or other["name"],
            "region": regions.get(other["divisions"][0]),
            "hub_id": other["hub_id"],
            "url": url,
            "divisions": other["divisions"],
            "keys": other["keys"],
            "accepts": accepts,
        }
        if limits:
            doc["limits"] = limits
        folder = home / "partners"
        folder.mkdir(exist_ok=True)
        (folder / f"{other['hub_id']}.yaml").write_text(
            "# written by `hub sandbox partner-home` (docs/cross-region.md)\n"
            + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
            encoding="utf-8",
        )
