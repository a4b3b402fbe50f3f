"""schemathesis against /openapi.json: generated requests to every API operation, authenticated
as a teller, an officer and ops, never get a server error (5xx), and every answer is one the
schema declares: its status, its content type and its body (schemathesis's conformance checks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.context import Hub
from hub.home import write_home
from hub.lifecycle import Role
from hub.storage import migrate
from hub.storage.engine import make_engine
from hub.tokens import create_token
from hub.web.app import create_app

ALL_SCOPES = ["applications:read", "applications:write", "reports:read", "ops"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[object, dict[str, str]]]:
    root: Path = tmp_path_factory.mktemp("openapi")
    home = write_home(root / "home")
    url = f"sqlite:///{root / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    hub = Hub.open(home, database_url=url)
    headers = {}
    for who, role, desk, department in (
        ("teller", Role.teller, "bank-xiahong", None),
        ("officer", Role.officer, None, "ts-mzj"),
        ("ops", Role.ops, None, None),
    ):
        secret, _ = create_token(
            hub, who, role=role, desk=desk, department=department, scopes=ALL_SCOPES, created_by="test"
        )
        headers[who] = f"Bearer {secret}"
    yield create_app(hub), headers
    hub.close()


def test_no_server_errors(api):
    app, tokens = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the whole API, not an empty schema
    seen: set[int] = set()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def calls(case):
            for who, token in tokens.items():
                response = case.call(headers={"authorization": token})
                seen.add(response.status_code)
                assert response.status_code < 500, (who, case.method, case.formatted_path, response.text[:500])
                case.validate_response(response, checks=CHECKS)  # the schema says what the API answers

        calls()
    assert {200, 404, 422} <= seen  # it reached real handlers, not only the auth layer
