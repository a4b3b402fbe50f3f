"""Partner hubs (`partners/NAME.yaml` in the hub home): where a partner is, the keys its messages
are signed with, what it may send us and what we may collect for it, and limits.

A broken file stops only its own partner (as a broken connection file does): the problems are
kept by name and reported by `hub partners check`, `hub doctor` and whatever tries to use it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub import yamlfile
from hub.catalog.models import CrossRegionMode
from hub.crypto import VerifyKey
from hub.divisions import division_problem
from hub.errors import ConfigProblem
from hub.partners.keys import parse_public_key, public_key_id

NAME = r"^[a-z][a-z0-9-]{1,31}$"
# a key's `valid_until` is a day agreed between two authorities: Beijing time, whatever time zone
# either hub is configured in
KEY_DAY_ZONE = ZoneInfo("Asia/Shanghai")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerKey(_Strict):
    """One of the partner's public signing keys. During a rotation the old key stays listed with
    `valid_until`: messages signed with it are taken until the end of that day (Beijing time)."""

    public_key: str  # PEM, or the base64 of the DER SubjectPublicKeyInfo (`hub partners identity`)
    id: str | None = None  # the key id the partner's messages name; checked against the key when given
    valid_until: date | None = None

    @field_validator("public_key")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_public_key(value)  # raises ValueError with a readable message
        return value

    @model_validator(mode="after")
    def _id_matches(self) -> PartnerKey:
        if self.id is not None and self.id != public_key_id(parse_public_key(self.public_key)):
            raise ValueError("id 与公钥不符 (key id does not match the public key)")
        return self

    @property
    def key(self) -> VerifyKey:
        return parse_public_key(self.public_key)

    @property
    def key_id(self) -> str:
        return public_key_id(self.key)


class Tls(_Strict):
    """How we trust the partner's HTTPS server: its authority's CA certificate (a private
    government CA), or the server's own certificate pinned (the only certificate taken)."""

    ca_file: str | None = None
    pinned_certificate: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Tls:
        if self.ca_file and self.pinned_certificate:
            raise ValueError("ca_file 与 pinned_certificate 只能选一 (give one of ca_file, pinned_certificate)")
        return self


class Accepted(_Strict):
    """One of our items the partner's desks may collect for us, and how."""

    item: str
    modes: list[CrossRegionMode] = Field(min_length=1)


class PartnerLimits(_Strict):
    timeout_seconds: float = Field(default=30, gt=0, le=600)  # one message: connect, send, answer
    max_message_bytes: int = Field(default=60 * 1024 * 1024, ge=1024)  # a message with its files
    max_answer_bytes: int = Field(default=1024 * 1024, ge=1024)  # an answer (acknowledgement, item list)
    concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=200, ge=1)  # a partner down for days is still retried
    backoff_seconds: float = Field(default=5, gt=0)
    max_backoff_seconds: float = Field(default=900, gt=0)


class PartnerFile(_Strict):
    name: str  # shown to staff, e.g. 福鼎市
    region: str | None = None  # e.g. 福建省宁德市福鼎市
    hub_id: str = Field(pattern=NAME)  # the partner's own name for itself (the `from` of its messages)
    url: str  # base URL of the partner hub; https except on loopback
    divisions: list[str] = Field(min_length=1)
    keys: list[PartnerKey] = Field(min_length=1)
    tls: Tls = Field(default_factory=Tls)
    accepts: list[Accepted] = Field(default_factory=list)  # ours, collected there, decided here
    collects: list[str] | Literal["all"] = "all"  # theirs (of the list they publish) our desks may collect
    desks: list[str] | None = None  # our desks that may collect for them (None: all)
    limits: PartnerLimits = Field(default_factory=PartnerLimits)

    @field_validator("divisions")
    @classmethod
    def _divisions(cls, values: list[str]) -> list[str]:
        for v in values:
            if problem := division_problem(v):
                raise ValueError(problem)
        return values

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url 应为 https://主机[:端口] (the partner's base URL)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("非本机地址须用 https (http only on loopback)")
        if parts.query or parts.fragment or parts.username:
            raise ValueError("url 不能带查询串、片段或用户名 (a base URL only)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _unique(self) -> PartnerFile:
        codes = [a.item for a in self.accepts]
        if dupes := sorted({c for c in codes if codes.count(c) > 1}):
            raise ValueError(f"accepts 中事项重复 (duplicate item): {', '.join(dupes)}")
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("keys 中公钥重复 (the same key twice)")
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Partner:
    """A configured partner hub, by its file name (`partners/fuding.yaml` is `fuding`)."""

    name: str
    file: str
    spec: PartnerFile
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def hub_id(self) -> str:
        return self.spec.hub_id

    @property
    def display(self) -> str:
        return self.spec.name

    @cached_property
    def accepts(self) -> dict[str, tuple[str, ...]]:
        return {a.item: tuple(a.modes) for a in self.spec.accepts}

    def key(self, key_id: str, on: date) -> PartnerKey | None:
        """The partner's key with this id, if it is still valid on `on` (a Beijing date)."""
        for k in self.spec.keys:
            if k.key_id == key_id:
                return k if k.valid_until is None or on <= k.valid_until else None
        return None

    def known_key(self, key_id: str) -> PartnerKey | None:
        return next((k for k in self.spec.keys if k.key_id == key_id), None)

    def may_collect(self, code: str) -> bool:
        return self.spec.collects == "all" or code in self.spec.collects

    def desk_allowed(self, desk: str) -> bool:
        return self.spec.desks is None or desk in self.spec.desks


@dataclass
class Partners:
    """Every partner file in the hub home: the usable ones and, by name, why the others are not."""

    by_name: dict[str, Partner] = field(default_factory=dict)
    problems: dict[str, list[ConfigProblem]] = field(default_factory=dict)

    def by_hub_id(self, hub_id: str) -> Partner | None:
        return next((p for p in self.by_name.values() if p.hub_id == hub_id), None)

    def __bool__(self) -> bool:
        return bool(self.by_name or self.problems)


def load_partners(folder: Path, *, home: Path | None = None) -> Partners:
    found = Partners()
    if not folder.is_dir():
        return found
    seen_ids: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        name = path.stem
        shown = str(path.relative_to(home)) if home and path.is_relative_to(home) else str(path)
        doc = yamlfile.load(path, shown)
        spec = yamlfile.validate(doc, PartnerFile) if not doc.problems else None
        if spec is not None:
            if not _name_ok(name):
                doc.problems.append(doc.problem((), f"文件名应为小写字母、数字和连字符 (bad partner name {name!r})"))
            if spec.hub_id in seen_ids:
                doc.problems.append(
                    doc.problem(("hub_id",), f"hub_id {spec.hub_id} 已用于 {seen_ids[spec.hub_id]} (used twice)")
                )
            seen_ids.setdefault(spec.hub_id, name)
        if doc.problems or spec is None:
            found.problems[name] = doc.problems
            continue
        found.by_name[name] = Partner(name, shown, spec, doc.lines)
    return found


def _name_ok(name: str) -> bool:
    import re

    return re.fullmatch(NAME, name) is not None


def cross_check(partner: Partner, *, catalog, resolve) -> list[str]:
    """What is wrong with a partner file that loading it alone cannot see: the items it accepts
    (in our catalogue, in modes the item allows), its TLS trust file, the desks it names.
    `catalog`: our own catalogue (None: not loaded — item and desk checks are skipped);
    `resolve`: a path in the hub home. `hub doctor` and `hub partners check` both ask here."""
    out = []
    for code, modes in partner.accepts.items():
        item = catalog.items.get(code) if catalog is not None else None
        if catalog is not None and item is None:
            out.append(f"{partner.file}: accepts {code}, not in our catalogue (不在本地目录)")
        elif item is not None and (missing := [m for m in modes if m not in item.cross_region]):
            out.append(f"{partner.file}: {code} does not allow {', '.join(missing)} (its cross_region 未开放)")
    tls = partner.spec.tls
    if (anchor := tls.ca_file or tls.pinned_certificate) and not resolve(anchor).is_file():
        which = "tls.ca_file" if tls.ca_file else "tls.pinned_certificate"
        out.append(f"{partner.file}: {which} file is missing ({anchor})")
    for desk in partner.spec.desks or []:
        if catalog is not None and desk not in catalog.desks:
            out.append(f"{partner.file}: desks names {desk}, no such desk (窗口不存在)")
    return out
