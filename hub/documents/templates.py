"""Notice templates: ops-editable YAML files in the hub home, `notices/<kind>.yaml`, and per item
`notices/<ITEM_CODE>/<kind>.yaml` (taken over the general one when present).

A template holds text blocks; each is a Jinja2 template run in a SandboxedEnvironment with
StrictUndefined (a misspelt variable is an error, not an empty string). The result is plain text
handed to fpdf2 — never markup — so autoescaping is moot and nothing in the data can change the
page. Keys:

    title: 受理通知书                      # the heading
    greeting: "{{ applicant.name }}："    # the first line
    body: |                               # paragraphs: a blank line between; lines joined
      …
    rows:                                 # a two-column table of facts; a row whose value is
      - [办件号, "{{ number }}"]           #   empty is left out
    table:                                # optional: one row per element of a list
      heading: 需要补正的内容
      columns: [项目, 说明]
      each: supplement.materials          # an expression naming the list
      cells: ["{{ row.name }}", "{{ row.note }}"]
    notes: |                              # after the tables (remedies, reminders)
      …
    signatures: [申请人（签字）]            # signature lines

The variables are the document's snapshot (hub.documents.snapshot.take; docs/documents.md lists
them) plus `code` (the verification code)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from hub import yamlfile
from hub.errors import ConfigInvalid, ConfigProblem

FOLDER = "notices"
ITEM_DIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    heading: str = ""
    columns: list[str] = Field(min_length=1, max_length=6)
    each: str
    cells: list[str]


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    greeting: str = ""
    body: str = ""
    rows: list[tuple[str, str]] = Field(default_factory=list)
    table: TableSpec | None = None
    notes: str = ""
    signatures: list[str] = Field(default_factory=list, max_length=4)


@dataclass
class Rendered:
    """A template filled in: plain text only."""

    title: str
    greeting: str
    body: str
    rows: list[tuple[str, str]]
    table_heading: str
    columns: list[str]
    table: list[list[str]]
    notes: str
    signatures: list[str]

    def all_text(self) -> str:
        cells = [c for r in self.table for c in r]
        parts = [self.title, self.greeting, self.body, self.notes, self.table_heading, *self.columns, *cells]
        parts += [f"{a}{b}" for a, b in self.rows] + self.signatures
        return "\n".join(parts)


@dataclass
class Template:
    file: Path
    spec: TemplateSpec
    doc: yamlfile.YamlDoc
    raw_lines: list[str] = field(default_factory=list)

    def line_of(self, loc: tuple[str | int, ...], template_line: int = 1) -> int:
        """The file line of line `template_line` of the text block at `loc`."""
        line = self.doc.line(loc)
        head = self.raw_lines[line - 1].rstrip() if 0 < line <= len(self.raw_lines) else ""
        block = bool(re.search(r"[|>][-+0-9]*$", head))  # `body: |`: the text starts below the key
        return line + (1 if block else 0) + template_line - 1

    def _text(self, loc: tuple[str | int, ...], source: str, context: dict[str, Any]) -> str:
        try:
            return _env.from_string(source).render(context).strip()
        except TemplateSyntaxError as exc:
            raise self._problem(loc, exc.lineno or 1, f"模板语法错误 (template syntax): {exc.message}") from exc
        except TemplateError as exc:
            lineno = _lineno(exc)
            raise self._problem(loc, lineno, f"模板无法填写 (template error): {exc}") from exc

    def _problem(self, loc: tuple[str | int, ...], lineno: int, message: str) -> ConfigInvalid:
        return ConfigInvalid([ConfigProblem(self.doc.file, self.line_of(loc, lineno), message)])

    def render(self, context: dict[str, Any]) -> Rendered:
        """Fill in every block; a problem raises ConfigInvalid naming the file and line."""
        s = self.spec
        rows = []
        for i, (label, value) in enumerate(s.rows):
            text = self._text(("rows", i, 1), value, context)
            if text:
                rows.append((self._text(("rows", i, 0), label, context), text))
        table: list[list[str]] = []
        if s.table is not None:
            try:
                items = _env.compile_expression(s.table.each, undefined_to_none=False)(**context)
                items = list(items or [])
            except TemplateError as exc:
                raise self._problem(("table", "each"), 1, f"模板无法填写 (template error): {exc}") from exc
            except TypeError as exc:
                raise self._problem(("table", "each"), 1, f"each 不是列表 (not a list): {exc}") from exc
            for row in items[:200]:
                table.append(
                    [self._text(("table", "cells", j), c, context | {"row": row}) for j, c in enumerate(s.table.cells)]
                )
        return Rendered(
            title=self._text(("title",), s.title, context),
            greeting=self._text(("greeting",), s.greeting, context),
            body=self._text(("body",), s.body, context),
            rows=rows,
            table_heading=s.table.heading if s.table else "",
            columns=list(s.table.columns) if s.table else [],
            table=table,
            notes=self._text(("notes",), s.notes, context),
            signatures=list(s.signatures),
        )


def _lineno(exc: Exception) -> int:
    """The template line an error happened on, from the traceback of the compiled template."""
    tb = exc.__traceback__
    line = 1
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load(path: Path, display: str | None = None) -> Template:
    doc = yamlfile.load(path, display)
    if doc.problems:
        raise ConfigInvalid(doc.problems)
    spec = yamlfile.validate(doc, TemplateSpec)
    if spec is None:
        raise ConfigInvalid(doc.problems)
    if spec.table is not None and len(spec.table.cells) != len(spec.table.columns):
        raise ConfigInvalid([doc.problem(("table", "cells"), "cells 与 columns 数目不同 (one cell per column)")])
    for loc, source in _sources(spec):  # syntax errors now, not at the first document
        try:
            _env.parse(source)
        except TemplateSyntaxError as exc:
            t = Template(path, spec, doc, path.read_text(encoding="utf-8").splitlines())
            raise t._problem(loc, exc.lineno or 1, f"模板语法错误 (template syntax): {exc.message}") from exc
    return Template(path, spec, doc, path.read_text(encoding="utf-8").splitlines())


def _sources(spec: TemplateSpec):
    yield ("title",), spec.title
    yield ("greeting",), spec.greeting
    yield ("body",), spec.body
    yield ("notes",), spec.notes
    for i, (label, value) in enumerate(spec.rows):
        yield ("rows", i, 0), label
        yield ("rows", i, 1), value
    if spec.table is not None:
        for j, cell in enumerate(spec.table.cells):
            yield ("table", "cells", j), cell


def folder(config_dir: Path) -> Path:
    return config_dir / FOLDER


def find(config_dir: Path, kind: str, item_code: str | None) -> Path:
    """The template file for `kind`: the item's own if it has one, else the general one."""
    base = folder(config_dir)
    if item_code and ITEM_DIR.match(item_code):
        own = base / item_code / f"{kind}.yaml"
        if own.is_file():
            return own
    general = base / f"{kind}.yaml"
    if not general.is_file():
        raise ConfigInvalid([ConfigProblem(str(general), 1, f"缺少文书模板 (no template for {kind})")])
    return general


def template_for(config_dir: Path, kind: str, item_code: str | None) -> Template:
    path = find(config_dir, kind, item_code)
    return load(path, f"{FOLDER}/{path.relative_to(folder(config_dir)).as_posix()}")


def check(config_dir: Path, kinds: list[str], item_codes: set[str]) -> list[ConfigProblem]:
    """Every template under `notices/` rendered against a sample snapshot: its problems with
    file and line. A missing general template, an unknown kind or item folder are problems too."""
    from hub.documents.snapshot import sample

    problems: list[ConfigProblem] = []
    base = folder(config_dir)
    shown = config_dir.name
    files = [base / f"{k}.yaml" for k in kinds]
    for path in files:
        if not path.is_file():
            problems.append(ConfigProblem(f"{shown}/{FOLDER}/{path.name}", 1, "缺少文书模板 (no template)"))
    if base.is_dir():
        for path in sorted(base.glob("*.yaml")):
            if path.stem not in kinds:
                problems.append(
                    ConfigProblem(f"{shown}/{FOLDER}/{path.name}", 1, f"未知文书种类 (unknown kind {path.stem})")
                )
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            if sub.name not in item_codes:
                problems.append(
                    ConfigProblem(f"{shown}/{FOLDER}/{sub.name}", 1, f"目录中没有事项 {sub.name} (no such item)")
                )
            for path in sorted(sub.glob("*.yaml")):
                if path.stem not in kinds:
                    problems.append(
                        ConfigProblem(
                            f"{shown}/{FOLDER}/{sub.name}/{path.name}", 1, f"未知文书种类 (unknown kind {path.stem})"
                        )
                    )
                else:
                    files.append(path)
    for path in files:
        if not path.is_file():
            continue
        display = f"{shown}/{path.relative_to(config_dir)}"
        try:
            load(path, display).render(sample(path.stem) | {"code": "ABCD-EFGH-JKMN-PQRS"})
        except ConfigInvalid as exc:
            problems.extend(exc.problems)
    return problems
