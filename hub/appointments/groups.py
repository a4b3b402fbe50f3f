"""Item groups (社保医保类, 户籍证件类 …): how the hall's queue groups the catalogue's items, each with
the letter its tickets carry. Ops edit config/appointments.yaml; it is loaded and cross-checked
against the catalogue like the catalogue itself, every problem with its file and line."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hub import yamlfile
from hub.catalog.models import Catalog, Channel
from hub.errors import ConfigInvalid, ConfigProblem

FILE = "appointments.yaml"
# desks that receive people in person: a bank outlet or the online channel has no queue
QUEUE_CHANNELS = frozenset({Channel.hall, Channel.township, Channel.enclave})


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    name: str = Field(min_length=1, max_length=50)
    letter: str = Field(pattern=r"^[A-Z]$")  # tickets A001, B014 …
    items: list[str] = Field(min_length=1)
    desks: list[str] | None = None  # None: every hall, township and enclave desk


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: list[Group] = Field(default_factory=list)


class Groups:
    """The checked groups: by code, and which desks serve each."""

    def __init__(self, groups: list[Group], desks_of: dict[str, list[str]]):
        self.by_code = {g.code: g for g in groups}
        self.desks_of = desks_of

    def __iter__(self):
        return iter(self.by_code.values())

    def get(self, code: str) -> Group | None:
        return self.by_code.get(code)

    def at(self, desk: str) -> list[Group]:
        return [g for g in self.by_code.values() if desk in self.desks_of[g.code]]

    def of_item(self, code: str) -> Group | None:
        return next((g for g in self.by_code.values() if code in g.items), None)


def check_groups(config_dir: Path, catalog: Catalog) -> tuple[Groups | None, list[ConfigProblem]]:
    """Load and cross-check; (None, problems) if any is an error. A home without the file has no
    groups (and no queue): not an error."""
    path = Path(config_dir) / FILE
    if not path.is_file():
        return Groups([], {}), []
    doc = yamlfile.load(path, f"{Path(config_dir).name}/{FILE}")
    parsed = yamlfile.validate(doc, _File) if not doc.problems else None
    if parsed is None:
        return None, doc.problems
    seen_items: dict[str, str] = {}
    codes: set[str] = set()
    letters: set[str] = set()
    desks_of: dict[str, list[str]] = {}
    queue_desks = [d.code for d in catalog.desks.values() if d.channel in QUEUE_CHANNELS]
    for i, g in enumerate(parsed.groups):
        if g.code in codes:
            doc.problems.append(doc.problem(("groups", i, "code"), f"重复的分组 (duplicate group): {g.code}"))
        if g.letter in letters:
            doc.problems.append(doc.problem(("groups", i, "letter"), f"号码字母重复 (duplicate letter): {g.letter}"))
        codes.add(g.code)
        letters.add(g.letter)
        for j, item in enumerate(g.items):
            if catalog.subject(item) is None:
                doc.problems.append(doc.problem(("groups", i, "items", j), f"未知事项 (unknown item): {item}"))
            elif item in seen_items:
                doc.problems.append(
                    doc.problem(
                        ("groups", i, "items", j),
                        f"事项已在分组 {seen_items[item]} 中 (item already in a group): {item}",
                    )
                )
            seen_items.setdefault(item, g.code)
        for j, desk in enumerate(g.desks or []):
            known = catalog.desks.get(desk)
            if known is None or known.channel not in QUEUE_CHANNELS:
                doc.problems.append(
                    doc.problem(
                        ("groups", i, "desks", j),
                        f"不是可排队的窗口（大厅、乡镇、飞地）(not a hall, township or enclave desk): {desk}",
                    )
                )
        desks_of[g.code] = list(g.desks) if g.desks is not None else queue_desks
    if doc.problems:
        return None, doc.problems
    return Groups(parsed.groups, desks_of), []


def load_groups(config_dir: Path, catalog: Catalog) -> Groups:
    groups, problems = check_groups(config_dir, catalog)
    if groups is None:
        raise ConfigInvalid(problems)
    return groups
