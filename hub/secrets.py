"""Secrets in configuration: only references, never values. `${ENV_VAR}` reads the environment,
`file:/path` reads a file (e.g. a mounted secret); a literal secret in a YAML file is refused.
Resolved values are pydantic SecretStr: printed, logged or dumped they show as '**********', and
no error message ever contains them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, SecretStr

_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def resolve(value: Any) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("密钥应写成 ${ENV_VAR} 或 file:/path 引用 (a secret must be a reference)")
    if m := _ENV.match(value.strip()):
        name = m.group(1)
        if name not in os.environ:
            raise ValueError(f"环境变量 {name} 未设置 (environment variable {name} is not set)")
        return SecretStr(os.environ[name])
    if value.startswith("file:"):
        path = Path(value[len("file:") :]).expanduser()
        try:
            return SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"无法读取密钥文件 {path} (cannot read secret file): {exc.strerror}") from None
    raise ValueError("不得在配置中直接写密钥，请用 ${ENV_VAR} 或 file:/path (literal secrets are not allowed)")


Secret = Annotated[SecretStr, BeforeValidator(resolve)]


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and (bool(_ENV.match(value.strip())) or value.startswith("file:"))


Loc = tuple[str | int, ...]


def secret_places(model: BaseModel, raw: Any) -> tuple[list[Loc], list[Loc]]:
    """Where a validated configuration holds a secret — any SecretStr, whether the connector typed
    it as `hub.secrets.Secret` or as pydantic's plain `SecretStr` — as (written out literally,
    still an unresolved reference). A plain SecretStr would otherwise take a literal password
    silently, or a `${ENV_VAR}` as the password itself: the rule holds whatever the connector's
    author chose (`resolve_plain_secrets` does the rest)."""
    literal: list[Loc] = []
    unresolved: list[Loc] = []

    def walk(value: Any, source: Any, loc: Loc) -> None:
        if isinstance(value, SecretStr):
            if source is None:
                return
            if not is_reference(source):
                literal.append(loc)
            elif value.get_secret_value() == source:  # a plain SecretStr kept the reference text
                unresolved.append(loc)
        elif isinstance(value, BaseModel) and isinstance(source, dict):
            for name, field in type(value).model_fields.items():
                key = field.alias or name
                walk(getattr(value, name), source.get(key), (*loc, key))
        elif isinstance(value, (list, tuple)) and isinstance(source, list):
            for i, (item, raw_item) in enumerate(zip(value, source, strict=False)):
                walk(item, raw_item, (*loc, i))
        elif isinstance(value, dict) and isinstance(source, dict):
            for key, item in value.items():
                walk(item, source.get(key), (*loc, key))

    walk(model, raw, ())
    return literal, unresolved


def with_resolved(raw: Any, places: list[Loc]) -> Any:
    """A copy of the raw configuration with the references at `places` replaced by their values
    (ValueError naming nothing secret when one cannot be read)."""
    import copy

    out = copy.deepcopy(raw)
    for loc in places:
        parent = out
        for key in loc[:-1]:
            parent = parent[key]
        parent[loc[-1]] = resolve(parent[loc[-1]]).get_secret_value()
    return out
