"""Pydantic models of the catalogue. Field names follow the ten standard elements (两级十同):
name, sub-item, category, code, legal basis, materials, process, fee, time limits, form."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hub.catalog.licence_types import LicenceType
from hub.divisions import division_problem


class Channel(StrEnum):
    hall = "hall"  # county centre hall (大厅)
    bank = "bank"  # rural bank outlet (政银合作)
    enclave = "enclave"  # enclave window in another city (窗口飞地)
    township = "township"  # township / village service point (便民服务中心)
    online = "online"  # 网上办 / 掌上办
    partner = "partner"  # 跨省通办: collected by a partner hub's desk, decided here


CHANNEL_ZH = {
    "hall": "大厅",
    "bank": "银行网点",
    "enclave": "飞地窗口",
    "township": "乡镇便民中心",
    "online": "网上",
    "partner": "跨域通办",
}
# 跨域通办 modes an item may allow: 异地代收代办 (a partner's desk collects and first-reviews, the
# deciding region accepts and decides), 多地联办 (one application, parts decided in both
# regions), 全程网办 (online from end to end)
CrossRegionMode = Literal["proxy", "joint", "online"]
MODE_ZH = {"proxy": "异地代收代办", "joint": "多地联办", "online": "全程网办"}

# Item type codes at the head of the basic code (GB/T 39554.1-2020 and provincial rules).
CATEGORY_CODES: dict[str, str] = {
    "行政许可": "XK",
    "行政处罚": "CF",
    "行政强制": "QZ",
    "行政征收": "ZS",
    "行政给付": "JF",
    "行政检查": "JC",
    "行政确认": "QR",
    "行政奖励": "JL",
    "行政裁决": "CJ",
    "其他行政权力": "QT",
    "公共服务": "GG",
}
ITEM_CODE = re.compile(r"^(?:(?P<partner>[a-z][a-z0-9-]*):)?(?P<type>[A-Z]{2})(?P<main>\d{5})(?P<sub>\d{3})$")
IDENT = r"^[a-z][a-z0-9_]*$"
# the actions that take a reason, for which an item may offer 常用语 (common phrases)
PHRASE_ACTIONS = frozenset({"reject", "deny", "withdraw", "request_supplement"})
TOLERANCE_DAYS = 60  # an item's default 容缺 promise horizon, in working days (Item.tolerance_days)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _division(v: str) -> str:
    problem = division_problem(v)
    if problem:
        raise ValueError(problem)
    return v


PHONE = r"^[0-9][0-9 ()+-]{2,29}$"  # a telephone number as printed: 0577-67581234


class Department(Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    short_name: str
    division: str
    phone: str | None = Field(default=None, pattern=PHONE)  # printed on its notices (咨询电话)

    _check_division = field_validator("division")(_division)


class Desk(Strict):
    """A place that takes applications: a bank outlet, an enclave window, a hall counter.
    It sits in `division` and acts for `acts_for` (收受分离: collecting vs deciding division)."""

    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    channel: Channel
    division: str
    acts_for: str
    operator: str
    address: str | None = None
    phone: str | None = Field(default=None, pattern=PHONE)  # printed on notices the desk hands out

    _check_divisions = field_validator("division", "acts_for")(_division)


FieldType = Literal[
    "string", "text", "integer", "decimal", "date", "boolean", "choice", "phone", "id_number", "uscc", "division"
]


class FormField(Strict):
    name: str = Field(pattern=IDENT)
    label: str
    label_en: str | None = None
    type: FieldType
    required: bool = True
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    options: list[str] | None = None
    help: str | None = None
    # required when every field named here has the value given, e.g. mailing_address when
    # {delivery_method: 邮寄送达}: checked with the form, so the same on every surface
    required_if: dict[str, str] | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"正则表达式无效 (invalid regular expression): {exc}") from exc
        return v

    @model_validator(mode="after")
    def _options_for_choice(self) -> FormField:
        if self.type == "choice" and not self.options:
            raise ValueError("choice 类型字段必须给出 options (a choice field needs options)")
        if self.type != "choice" and self.options:
            raise ValueError("只有 choice 类型字段可以有 options (only choice fields take options)")
        return self

    def shape(self) -> tuple:
        """What two items must agree on to share this field in a bundle's merged form."""
        return (self.type, tuple(self.options or ()))


class Material(Strict):
    name: str
    form: Literal["原件", "复印件", "原件和复印件", "电子材料"]
    copies: int = Field(default=1, ge=0)
    electronic_accepted: bool
    required: bool = True  # false: asked for only when the note applies (e.g. 委托代办时提交)
    deferrable: bool = False  # may be missing at acceptance under 容缺受理
    verify: str | None = None  # a 网上核验 kind that can replace the paper (connectors provide it)
    # 电子证照: a licence type code (config/licences.yaml) whose licence, looked up at intake in our
    # licence library or a department's, is taken by reference instead of a copy
    licence: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9]{1,31}$")
    # 免提交: the deciding department obtains it itself (data sharing); never asked of the applicant
    supplied_by: Literal["applicant", "agency"] = "applicant"
    note: str | None = None


class ProcessStep(Strict):
    step: str
    by: str
    description: str | None = None


class Fee(Strict):
    charged: bool
    basis: str | None = None
    standard: str | None = None

    @model_validator(mode="after")
    def _basis_when_charged(self) -> Fee:
        if self.charged and not (self.basis and self.standard):
            raise ValueError("收费事项须写明收费依据和标准 (a charged item needs basis and standard)")
        return self


class Eligibility(Strict):
    """Who may apply, checked from what intake already holds: the applicant's age on the day of
    intake (from the ID number) and where their ID number says they are registered."""

    min_age: int | None = Field(default=None, ge=0, le=150)
    max_age: int | None = Field(default=None, ge=0, le=150)
    divisions: list[str] | None = None  # ID numbers registered in these divisions (prefix match)
    message: str | None = None  # the rule in the words of the item's guide, shown when it fails


class Item(Strict):
    code: str
    name: str
    sub_item: str | None = None
    category: str
    legal_basis: list[str] = Field(min_length=1)
    department: str
    connection: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    channels: list[Channel] = Field(min_length=1)
    instant: bool = False
    promised_days: int = Field(ge=0)
    statutory_days: int = Field(ge=0)
    fee: Fee
    materials: list[Material] = Field(default_factory=list)
    process: list[ProcessStep] = Field(min_length=1)
    form: list[FormField] = Field(default_factory=list)
    signature_required: bool = False  # needs a face-to-face signature (面签)
    # 容缺: how far ahead, in working days from the day the promise is taken, the applicant may
    # promise a deferred material. The default is the longest statutory time limit the county's
    # catalogue holds (60): generous, but a promise can no longer outlive any case (9999-12-31).
    tolerance_days: int = Field(default=TOLERANCE_DAYS, ge=1, le=250)
    keywords: list[str] = Field(default_factory=list)
    cross_region: list[CrossRegionMode] = Field(default_factory=list)  # 跨域通办 modes it allows
    eligibility: Eligibility | None = None  # who may apply (checked at intake, every surface)
    # 常用语: common reasons offered beside the reason box, by action (reject, deny, withdraw,
    # request_supplement …); the officer clicks one to insert it and may edit it before sending
    phrases: dict[str, list[str]] = Field(default_factory=dict)
    # 补正: working days the applicant has to bring what is asked for; None: the hub's default
    # (`supplement_days` in hub.yaml)
    supplement_days: int | None = Field(default=None, ge=1, le=60)
    # set for a partner's item in our catalogue (its code is then "PARTNER:CODE"): the partner hub
    # decides it; never written in a catalogue file (the loader refuses it)
    partner: str | None = None
    region: str | None = None  # the deciding region's name, shown beside a partner's item
    # 电子证照: the type code (config/licences.yaml) of the licence an approval issues, if any
    licence: str | None = Field(default=None, pattern=r"^[A-Z]{2,10}$")

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in CATEGORY_CODES:
            raise ValueError(f"未知事项类型 (unknown category) {v!r}; 可选: {', '.join(CATEGORY_CODES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        m = ITEM_CODE.match(self.code)
        if not m:
            raise ValueError(
                f"事项编码 {self.code!r} 应为2位类型码+5位主项码+3位子项码，如 QR00117001 "
                "(item code must be type letters + 5-digit item + 3-digit sub-item)"
            )
        if (m["partner"] or None) != self.partner:
            raise ValueError("只有对方地区的事项编码带“地区:”前缀 (only a partner's items carry a PARTNER: prefix)")
        if m["type"] != CATEGORY_CODES[self.category]:
            raise ValueError(
                f"事项编码类型码 {m['type']} 与事项类型 {self.category}({CATEGORY_CODES[self.category]}) 不符"
                " (code prefix does not match category)"
            )
        if (m["sub"] == "000") != (self.sub_item is None):
            raise ValueError("子项码为000当且仅当无子项 (sub-item code 000 exactly when there is no sub-item)")
        if self.promised_days > self.statutory_days:
            raise ValueError("承诺时限不得长于法定时限 (promised_days must not exceed statutory_days)")
        if self.instant and self.promised_days != 0:
            raise ValueError("即办件的承诺时限应为0 (an instant item is promised in 0 working days)")
        _unique([f.name for f in self.form], "form field")
        names = {f.name for f in self.form}
        for f in self.form:
            if unknown := sorted(set(f.required_if or {}) - names):
                raise ValueError(
                    f"字段 {f.name} 的 required_if 引用了不存在的字段 (unknown field): {', '.join(unknown)}"
                )
        if unknown := sorted(set(self.phrases) - PHRASE_ACTIONS):
            raise ValueError(
                f"phrases 只能用于这些操作 (phrases only for): {', '.join(sorted(PHRASE_ACTIONS))}; {unknown}"
            )
        for action, said in self.phrases.items():
            if any(not p.strip() or len(p) > 200 for p in said):
                raise ValueError(f"phrases.{action}: 常用语不能为空且不超过200字 (1-200 characters each)")
        for d in (self.eligibility.divisions or []) if self.eligibility else []:
            if problem := division_problem(d):
                raise ValueError(f"eligibility.divisions: {problem}")
        _unique([m.name for m in self.materials], "material")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels 有重复 (duplicate channel)")
        return self

    @property
    def title(self) -> str:
        return f"{self.name}（{self.sub_item}）" if self.sub_item else self.name


class Bundle(Strict):
    """一件事: several items behind one merged form; one application, one part per item."""

    code: str = Field(pattern=r"^YJS-[A-Z0-9]+$")
    name: str
    description: str | None = None
    items: list[str] = Field(min_length=2)
    channels: list[Channel] = Field(min_length=1)
    form: list[FormField] = Field(default_factory=list)  # shared fields the items do not carry
    keywords: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_items(self) -> Bundle:
        _unique(self.items, "item")
        return self

    @property
    def title(self) -> str:
        return self.name


def _unique(names: list[str], what: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"重复的{what} (duplicate {what}): {', '.join(dupes)}")


class Catalog(BaseModel):
    """The loaded, cross-checked catalogue. Build it with `load_catalog`, not by hand."""

    model_config = ConfigDict(frozen=True)

    departments: dict[str, Department]
    desks: dict[str, Desk]
    items: dict[str, Item]
    bundles: dict[str, Bundle]
    # subjects that are not available now, with why (a partner withdrew an item a 多地联办 bundle
    # needs, a partner's list is too old): intake says so instead of "unknown code"
    unavailable: dict[str, tuple[str, str]] = Field(default_factory=dict)
    # 多地联办 bundles naming a partner's item ("PARTNER:CODE"): offered (in `bundles`) once that
    # partner's current list holds the item (hub.partners.items.merged)
    joint_bundles: dict[str, Bundle] = Field(default_factory=dict)
    licence_types: dict[str, LicenceType] = Field(default_factory=dict)  # config/licences.yaml
    # merged forms and materials per subject, worked out once: the catalogue never changes after
    # loading, and a batch asks the same question for every record
    _merged: dict[tuple[str, str, str], tuple[Any, ...]] = PrivateAttr(default_factory=dict)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Catalog:
        copy = super().model_copy(update=update, deep=deep)
        copy._merged = {}  # a copy shares the private dict; an updated copy must work things out again
        return copy

    def _memo(self, what: str, subject: Item | Bundle, work: Callable[[], list[Any]]) -> tuple[Any, ...]:
        key = (what, type(subject).__name__, subject.code)
        merged = self.__pydantic_private__["_merged"]  # not self._merged: pydantic's lookup is slow
        found = merged.get(key)
        if found is None:
            found = merged[key] = tuple(work())  # a tuple: shared by every caller, so not to be changed
        return found

    def subject(self, code: str) -> Item | Bundle | None:
        return self.items.get(code) or self.bundles.get(code)

    def items_of(self, subject: Item | Bundle) -> list[Item]:
        return [subject] if isinstance(subject, Item) else [self.items[c] for c in subject.items]

    def tolerance_days(self, subject: Item | Bundle) -> int:
        """How many working days ahead a 容缺 promise may fall: a bundle's is its strictest item's."""
        return min(item.tolerance_days for item in self.items_of(subject))

    def form_of(self, subject: Item | Bundle) -> tuple[FormField, ...]:
        """The form a desk fills: an item's own, or a bundle's merged form (fields shared by name)."""
        return self._memo("form", subject, lambda: self._form_of(subject))

    def _form_of(self, subject: Item | Bundle) -> list[FormField]:
        fields: dict[str, FormField] = {}
        extra = subject.form if isinstance(subject, Bundle) else []
        for f in [*extra, *(f for item in self.items_of(subject) for f in item.form)]:
            prev = fields.setdefault(f.name, f)
            if f.required and not prev.required:  # required if any member item requires it
                fields[f.name] = prev.model_copy(update={"required": True})
        return list(fields.values())

    def materials_of(self, subject: Item | Bundle) -> tuple[Material, ...]:
        """Materials by name. Merged for a bundle: required if any member requires it, and
        deferrable only if every member that requires it may defer it."""
        return self._memo("materials", subject, lambda: self._materials_of(subject))

    def _materials_of(self, subject: Item | Bundle) -> list[Material]:
        by_name: dict[str, list[Material]] = {}
        for item in self.items_of(subject):
            for m in item.materials:
                by_name.setdefault(m.name, []).append(m)
        merged = []
        for copies in by_name.values():
            required = [m for m in copies if m.required]
            deciding = required or copies
            merged.append(
                deciding[0].model_copy(
                    update={"required": bool(required), "deferrable": all(m.deferrable for m in deciding)}
                )
            )
        return merged
