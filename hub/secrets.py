"""Secrets in configuration: only references, never values. `${ENV_VAR}` reads the environment,
`file:/path` reads a file (e.g. a mounted secret); a literal secret in a YAML file is refused.
Resolved values are pydantic SecretStr: printed, logged or dumped they show as '**********', and
no error message ever contains them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr

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
