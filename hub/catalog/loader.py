"""Load the catalogue from a configuration folder and cross-check it.

Layout (inside a hub home or the repository's `config/`):
    departments.yaml   departments: [...]
    desks.yaml         desks: [...]
    catalog/*.yaml     items: [...] and/or bundles: [...]
    licences.yaml      types: [...] (电子证照 types; optional)

Every problem is reported with its file and line; loading fails if any is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hub import yamlfile
from hub.catalog.licence_types import LicenceType, LicenceTypesFile
from hub.catalog.models import Bundle, Catalog, Department, Desk, Item
from hub.errors import ConfigInvalid, ConfigProblem


class _DepartmentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    departments: list[Department]


class _DesksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desks: list[Desk]


class _CatalogFile(BaseModel):
    """The file's shape only; entries are validated one by one so that one bad item neither
    hides the others nor makes the bundles that use them look wrong."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = []
    bundles: list[dict[str, Any]] = []


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def check_catalog(config_dir: Path) -> tuple[Catalog | None, list[ConfigProblem]]:
    """Load and cross-check; return the catalogue (None if any error) and every problem found."""
    config_dir = Path(config_dir)
    problems: list[ConfigProblem] = []
    docs: list[yamlfile.YamlDoc] = []

    def load(path: Path, model: type[BaseModel]):
        if not path.is_file():
            problems.append(ConfigProblem(_display(path, config_dir), 1, "文件不存在 (file missing)"))
            return None, None
        doc = yamlfile.load(path, _display(path, config_dir))
        docs.append(doc)
        parsed = yamlfile.validate(doc, model) if not doc.problems else None
        return doc, parsed

    departments: dict[str, Department] = {}
    dep_doc, dep_file = load(config_dir / "departments.yaml", _DepartmentsFile)
    if dep_file:
        for i, d in enumerate(dep_file.departments):
            if d.code in departments:
                dep_doc.problems.append(
                    dep_doc.problem(("departments", i, "code"), f"重复的部门 (duplicate department): {d.code}")
                )
            departments[d.code] = d

    desks: dict[str, Desk] = {}
    desk_doc, desk_file = load(config_dir / "desks.yaml", _DesksFile)
    if desk_file:
        divisions = {d.division for d in departments.values()}
        for i, desk in enumerate(desk_file.desks):
            if desk.code in desks:
                desk_doc.problems.append(
                    desk_doc.problem(("desks", i, "code"), f"重复的窗口 (duplicate desk): {desk.code}")
                )
            if departments and desk.acts_for not in divisions:
                desk_doc.problems.append(
                    desk_doc.problem(
                        ("desks", i, "acts_for"),
                        f"窗口代办的行政区划 {desk.acts_for} 下没有部门 (no department decides in that division)",
                    )
                )
            desks[desk.code] = desk

    items: dict[str, Item] = {}
    bundles: dict[str, Bundle] = {}
    joint: dict[str, Bundle] = {}
    where: dict[str, str] = {}
    catalog_dir = config_dir / "catalog"
    files = sorted(catalog_dir.glob("*.yaml")) if catalog_dir.is_dir() else []
    if not files:
        problems.append(ConfigProblem(_display(catalog_dir, config_dir), 1, "目录中没有事项文件 (no catalogue files)"))
    parsed_files: list[tuple[yamlfile.YamlDoc, list[Bundle | None]]] = []
    parsed_files_docs: list[tuple[yamlfile.YamlDoc, list[Item | None]]] = []
    broken: set[str] = set()  # codes of entries with errors of their own: not "unknown" elsewhere
    for path in files:
        doc, parsed = load(path, _CatalogFile)
        if parsed is None:
            continue
        file_items = [yamlfile.validate(doc, Item, raw, ("items", i)) for i, raw in enumerate(parsed.items)]
        file_bundles = [yamlfile.validate(doc, Bundle, raw, ("bundles", i)) for i, raw in enumerate(parsed.bundles)]
        broken |= {str(raw.get("code")) for raw, ok in zip(parsed.items, file_items, strict=True) if ok is None}
        parsed_files.append((doc, file_bundles))
        parsed_files_docs.append((doc, file_items))
        for i, item in enumerate(file_items):
            if item is None:
                continue
            loc = ("items", i)
            if item.code in where:
                doc.problems.append(
                    doc.problem(
                        (*loc, "code"), f"事项编码重复 (duplicate item code) {item.code}, 已见于 {where[item.code]}"
                    )
                )
            where[item.code] = f"{doc.file}:{doc.line((*loc, 'code'))}"
            if departments and item.department not in departments:
                doc.problems.append(
                    doc.problem((*loc, "department"), f"未知部门 (unknown department): {item.department}")
                )
            if item.partner is not None:
                doc.problems.append(
                    doc.problem(
                        (*loc, "partner"), "partner 由对方目录同步得到，不能手写 (set by the partner's item list only)"
                    )
                )
            items[item.code] = item

    # Bundles refer to items in any file, so check them once all items are known.
    for doc, file_bundles in parsed_files:
        for i, bundle in enumerate(file_bundles):
            if bundle is None:
                continue
            loc = ("bundles", i)
            if bundle.code in where:
                doc.problems.append(
                    doc.problem((*loc, "code"), f"编码重复 (duplicate code) {bundle.code}, 已见于 {where[bundle.code]}")
                )
            where[bundle.code] = f"{doc.file}:{doc.line((*loc, 'code'))}"
            members = []
            for j, code in enumerate(bundle.items):
                if code in broken:
                    continue  # its own error is already reported
                if ":" in code:  # 多地联办: a partner's item, checked against its list when that is synced
                    if j == 0:
                        doc.problems.append(
                            doc.problem(
                                (*loc, "items", 0),
                                "多地联办的第一个事项须为本地事项（牵头部门） (the lead item must be our own)",
                            )
                        )
                    continue
                if code not in items:
                    doc.problems.append(doc.problem((*loc, "items", j), f"一件事引用了未知事项 (unknown item): {code}"))
                else:
                    members.append(items[code])
            for member in members:
                missing = [c.value for c in bundle.channels if c not in member.channels]
                if missing:
                    doc.problems.append(
                        doc.problem(
                            (*loc, "channels"),
                            f"事项 {member.code} 未下放到渠道 {', '.join(missing)} (item not delegated to channel)",
                        )
                    )
            divisions = {departments[m.department].division for m in members if m.department in departments}
            if len(divisions) > 1:
                doc.problems.append(
                    doc.problem(
                        (*loc, "items"), "一件事的事项须由同一行政区划审批 (items must share a deciding division)"
                    )
                )
            seen: dict[str, tuple[str, tuple]] = {f.name: ("bundle", f.shape()) for f in bundle.form}
            for member in members:
                for f in member.form:
                    prev = seen.setdefault(f.name, (member.code, f.shape()))
                    if prev[1] != f.shape():
                        doc.problems.append(
                            doc.problem(
                                (*loc, "items"),
                                f"合并表单字段 {f.name} 在 {prev[0]} 与 {member.code} 中类型不一致 (merged form field conflicts)",
                            )
                        )
            if any(":" in code for code in bundle.items):
                joint[bundle.code] = bundle
            else:
                bundles[bundle.code] = bundle

    licence_types = _licence_types(config_dir, departments, docs)
    _check_licence_refs(parsed_files_docs, licence_types, departments)

    for doc in docs:
        problems.extend(doc.problems)
    if any(not p.warning for p in problems):
        return None, problems
    catalog = Catalog(
        departments=departments,
        desks=desks,
        items=items,
        bundles=bundles,
        joint_bundles=joint,
        licence_types=licence_types,
    )
    return catalog, problems


def _licence_types(
    config_dir: Path, departments: dict[str, Department], docs: list[yamlfile.YamlDoc]
) -> dict[str, LicenceType]:
    """licences.yaml: the 电子证照 types. A home without the file issues no licences."""
    path = config_dir / "licences.yaml"
    if not path.is_file():
        return {}
    doc = yamlfile.load(path, _display(path, config_dir))
    docs.append(doc)
    parsed = yamlfile.validate(doc, LicenceTypesFile) if not doc.problems else None
    if parsed is None:
        return {}
    types: dict[str, LicenceType] = {}
    for i, t in enumerate(parsed.types):
        if t.code in types:
            doc.problems.append(doc.problem(("types", i, "code"), f"重复的证照类型 (duplicate licence type): {t.code}"))
        if departments and t.issuer not in departments:
            doc.problems.append(doc.problem(("types", i, "issuer"), f"未知部门 (unknown department): {t.issuer}"))
        types[t.code] = t
    return types


def _check_licence_refs(
    files: list[tuple[yamlfile.YamlDoc, list[Item | None]]],
    types: dict[str, LicenceType],
    departments: dict[str, Department],
) -> None:
    """An item's result licence and a material's `licence:` must name a known type; an item that
    issues one is its issuer's and has the form fields the type prints."""
    for doc, file_items in files:
        for i, item in enumerate(file_items):
            if item is None:
                continue
            if item.licence is not None:
                t = types.get(item.licence)
                loc = ("items", i, "licence")
                if t is None:
                    doc.problems.append(doc.problem(loc, f"未知证照类型 (unknown licence type): {item.licence}"))
                else:
                    # (an unknown department is reported on its own line already)
                    if t.issuer != item.department and item.department in departments:
                        doc.problems.append(
                            doc.problem(
                                loc, f"证照 {t.code} 由 {t.issuer} 颁发，事项属于 {item.department} (issuer differs)"
                            )
                        )
                    names = {f.name for f in item.form}
                    if missing := [f for f in t.form_fields() if f not in names]:
                        doc.problems.append(
                            doc.problem(
                                loc, f"证照 {t.code} 需要表单字段 (form fields the licence needs): {', '.join(missing)}"
                            )
                        )
            for j, material in enumerate(item.materials):
                # Material.licence arrives with licences at intake; read it only where it exists
                code = getattr(material, "licence", None)
                if code is not None and code not in types:
                    doc.problems.append(
                        doc.problem(
                            ("items", i, "materials", j, "licence"), f"未知证照类型 (unknown licence type): {code}"
                        )
                    )


def load_catalog(config_dir: Path) -> Catalog:
    catalog, problems = check_catalog(config_dir)
    if catalog is None:
        raise ConfigInvalid([p for p in problems if not p.warning])
    return catalog
