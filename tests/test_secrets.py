"""Secrets in connection files are references, whatever type the connector's author gave them:
`hub.secrets.Secret` or pydantic's plain `SecretStr` (a third party's usual choice)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from hub.connection_config import load_connections
from hub.connectors import CheckResult, Connector
from hub.errors import ConfigInvalid
from hub.secrets import Secret


class Auth(BaseModel):
    user: str
    password: SecretStr  # plain pydantic, not hub.secrets.Secret


class PlainSpec(BaseModel):
    endpoint: str
    auth: Auth
    keys: list[SecretStr] = []
    token: Secret | None = None


class Plain(Connector):
    type = "plain"
    Spec = PlainSpec

    def check(self) -> CheckResult:
        return CheckResult(ok=True, message="ok")


def _make(tmp_path: Path, body: str) -> Connector:
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    (folder / "dept.yaml").write_text(body, encoding="utf-8")
    connections, problems = load_connections(folder, {"plain": Plain})
    assert not problems
    return connections["dept"].make({"plain": Plain})


def test_a_plain_secretstr_refuses_a_literal_with_file_and_line(tmp_path):
    body = "type: plain\nconfig:\n  endpoint: x\n  auth:\n    user: hub\n    password: hunter2-literal\n"
    with pytest.raises(ConfigInvalid) as exc:
        _make(tmp_path, body)
    message = str(exc.value)
    assert "connections/dept.yaml:6:" in message and "config.auth.password" in message
    assert "literal secrets are not allowed" in message and "hunter2-literal" not in message
    in_a_list = "type: plain\nconfig:\n  endpoint: x\n  auth: {user: hub, password: '${DEPT_PW}'}\n  keys: [abc]\n"
    with pytest.raises(ConfigInvalid, match=r"config\.keys\.0"):
        _make(tmp_path, in_a_list)


def test_a_plain_secretstr_reference_is_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPT_PW", "from-the-environment")
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    body = (
        "type: plain\nconfig:\n  endpoint: x\n  auth: {user: hub, password: '${DEPT_PW}'}\n"
        f"  keys: ['file:{secret_file}']\n  token: '${{DEPT_PW}}'\n"
    )
    spec = _make(tmp_path, body).spec
    assert spec.auth.password.get_secret_value() == "from-the-environment"  # not the text ${DEPT_PW}
    assert [k.get_secret_value() for k in spec.keys] == ["from-a-file"]
    assert spec.token.get_secret_value() == "from-the-environment"
    monkeypatch.delenv("DEPT_PW")
    with pytest.raises(ConfigInvalid, match="DEPT_PW"):
        _make(tmp_path, body)
