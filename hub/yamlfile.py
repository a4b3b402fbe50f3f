"""YAML loading that remembers where every value came from, so configuration errors can say
`FILE:LINE: message` instead of a path into a data structure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hub.errors import ConfigProblem

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDoc:
    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def line(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest known part of `loc`. Components that are not in the document
        (pydantic adds the member's name for unions) are skipped."""
        known: Loc = ()
        for part in loc:
            if (*known, part) in self.lines:
                known = (*known, part)
        return self.lines.get(known, 1)

    def problem(self, loc: Sequence[str | int], message: str, *, warning: bool = False) -> ConfigProblem:
        return ConfigProblem(self.file, self.line(loc), message, warning)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading, with dates left as strings: pydantic parses them and reports bad ones
    with their place, where PyYAML would raise a bare ValueError. LibYAML's parser where PyYAML
    has it: the pure-Python one takes most of a second over the sample catalogue, at every start."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path, display: str | None = None) -> YamlDoc:
    """Parse one YAML file. Syntax errors and duplicate keys become problems, never exceptions."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return YamlDoc(name, None, problems=[ConfigProblem(name, 1, f"文件不是UTF-8编码 (not UTF-8): {exc}")])
    doc = YamlDoc(name, None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc.data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        doc.problems.append(ConfigProblem(name, line, f"YAML语法错误 (YAML syntax): {exc.problem or exc}"))
        return doc
    finally:
        loader.dispose()
    if node is not None:
        _walk(node, (), doc)
    return doc


def _walk(node: yaml.Node, loc: Loc, doc: YamlDoc) -> None:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                doc.problems.append(
                    ConfigProblem(doc.file, key_node.start_mark.line + 1, f"重复的键 (duplicate key): {key}")
                )
            seen.add(key)
            doc.lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), doc)


def validate(doc: YamlDoc, model: type[M], data: Any = None, at: Loc = ()) -> M | None:
    """Validate `doc.data` (or `data`, found at `at` in the document) against `model`; on failure
    record one problem per error, with its line."""
    if not at:
        data = doc.data
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = (*at, *err["loc"])
            where = ".".join(str(p) for p in loc) or "(document)"
            doc.problems.append(doc.problem(loc, f"{where}: {err['msg']}"))
        return None
