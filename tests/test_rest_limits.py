"""The whole of one call and one poll is bounded (issue 17, second review): max_call_seconds covers
the OAuth2 token fetch and the 401 round (`longest_call` says so to the core); result documents
are capped per record (max_documents) and per poll (max_poll_bytes, max_poll_seconds) — the records
that do not fit are left for the next sync; an intake download without a listed size is bounded in
size (max_download_bytes) and time (max_call_seconds). Several credentials (AppKey + AppSecret) go
in `auth.api_key`, and a credential written literally into a request template is refused at load.
Real loopback servers: the test department (tests/support/rest_case_department.py) and the
scripted server (tests/support/scripted_http.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from hub.connection_config import load_connections
from hub.connectors import Batch, DeliveryError, PollFailure, Receipt, Update
from hub.errors import ConfigInvalid
from hub.plugins import PluginHost
from plugins.rest.connector import RestConnector
from plugins.rest.spec import RestSpec
from tests.support.rest_case_department import CaseDepartment
from tests.support.scripted_http import Scripted, connector, part, scripted_server

TYPES = PluginHost.configured(None).connector_types


@pytest.fixture
def dept() -> Iterator[CaseDepartment]:
    with CaseDepartment() as d:
        yield d


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as scripted:
        yield scripted


def case_connector(dept: CaseDepartment, **over: Any) -> RestConnector:
    spec = {
        "base_url": dept.url,
        "auth": {
            "oauth2": {
                "token_url": f"{dept.root}/oauth/token",
                "client_id": dept.client_id,
                "client_secret": SecretStr(dept.client_secret),
            }
        },
        "retries": 0,
        "check": {"path": "/me"},
        "submit": {
            "path": "/cases",
            "headers": {"X-Request-Id": "{{ part.part_id }}"},
            "body": {"caseType": "{{ part.item_code }}"},
            "remote_id": "data.caseNo",
        },
        "status": {
            "path": "/cases/{{ remote_id }}",
            "status": "data.state",
            "documents": {"items": "data.files", "name": "fileName", "url": "{{ href }}"},
        },
        "status_map": {"NEW": "received", "DONE": "approved"},
        **over,
    }
    return RestConnector("case", RestSpec.model_validate(spec))


def submitted(c: RestConnector, n: int) -> list[Receipt]:
    return [c.submit(part().model_copy(update={"part_id": f"00000000-0000-0000-0000-{i:012d}"})) for i in range(n)]


def split(results: list[Update | PollFailure]) -> tuple[dict[str, Update], dict[str, str]]:
    updates = {r.remote_id: r for r in results if isinstance(r, Update)}
    failures = {r.remote_id: r.message for r in results if isinstance(r, PollFailure)}
    return updates, failures


# ---------------------------------------------------------------- longest_call, max_call_seconds


def test_longest_call_is_max_call_seconds_and_one_step() -> None:
    spec = RestSpec.model_validate({"base_url": "https://dept.example/api", "auth": {"bearer": SecretStr("t")}})
    c = RestConnector("x", spec)
    assert c.longest_call() == (120 + 30, ("max_call_seconds",))  # defaults: 150 s < 90 % of a 300 s lease
    spec = RestSpec.model_validate(
        {"base_url": "https://dept.example/api", "auth": {"bearer": SecretStr("t")}, "max_call_seconds": 10}
    )
    assert RestConnector("x", spec).longest_call() == (20, ("max_call_seconds",))  # a step never past the call


def test_max_call_seconds_bounds_the_token_fetch_and_the_401_round(dept: CaseDepartment) -> None:
    c = case_connector(dept, max_call_seconds=1, timeout_seconds=10, retries=5)
    (receipt,) = submitted(c, 1)  # a token, cached
    dept.revoke_tokens()  # the API answers 401: one more round with a fresh token…
    dept.token_latency = 3  # …from a token endpoint that hangs
    started = time.monotonic()
    with pytest.raises(DeliveryError) as exc:
        c.submit(part())
    took = time.monotonic() - started
    assert exc.value.retryable and ("max_call_seconds" in str(exc.value) or "timeout" in str(exc.value))
    longest, _ = c.longest_call()  # type: ignore[misc]
    assert 0.9 < took < 1.9 and took < longest, took  # not 1 s for the call and 1 s more for the token
    assert receipt.remote_id == "AJ2026000001"


# ---------------------------------------------------------------- result documents


def test_a_record_with_more_documents_than_max_documents_is_a_poll_failure(dept: CaseDepartment) -> None:
    c = case_connector(dept, max_documents=5)
    many, few = submitted(c, 2)
    dept.decide(many.remote_id, "DONE", documents=6)
    dept.decide(few.remote_id, "DONE", documents=5)
    updates, failures = split(c.poll([many, few]))
    assert len(updates[few.remote_id].documents) == 5
    assert set(failures) == {many.remote_id} and "max_documents (5)" in failures[many.remote_id]
    assert dept.requests["GET /v2/files"] == 5  # none of the six was fetched


def test_documents_past_max_poll_bytes_wait_for_the_next_sync(dept: CaseDepartment) -> None:
    c = case_connector(dept, max_poll_bytes=2048)
    receipts = submitted(c, 3)
    for r in receipts:
        dept.decide(r.remote_id, "DONE", documents=2, padding=500)  # ~1.2 KiB a record: one fits a poll
    seen: set[str] = set()
    for _ in range(3):
        updates, failures = split(c.poll([r for r in receipts if r.remote_id not in seen]))
        assert len(updates) == 1 and not failures  # the others: not returned, not an error
        (update,) = updates.values()
        assert len(update.documents) == 2 and all(len(d.content) > 500 for d in update.documents)
        seen.add(update.remote_id)
    assert seen == {r.remote_id for r in receipts}

    # a record whose documents alone exceed the budget can never fit: an error naming the limit
    big = c.submit(part().model_copy(update={"part_id": "00000000-0000-0000-0000-00000000000b"}))
    dept.decide(big.remote_id, "DONE", documents=4, padding=500)
    updates, failures = split(c.poll([big]))
    assert not updates and "max_poll_bytes (2048)" in failures[big.remote_id]


def test_slow_documents_stop_at_max_poll_seconds_and_wait_for_the_next_sync(dept: CaseDepartment) -> None:
    c = case_connector(dept, max_poll_seconds=1.6)
    receipts = submitted(c, 3)
    for r in receipts:
        dept.decide(r.remote_id, "DONE", documents=2)
    dept.file_latency = 0.5  # a record's documents take 1 s: the second record's do not fit
    started = time.monotonic()
    updates, failures = split(c.poll(receipts))
    took = time.monotonic() - started
    assert len(updates) == 1 and not failures and took < 1.6 + 0.6, took
    dept.file_latency = 0
    rest = [r for r in receipts if r.remote_id not in updates]
    updates, failures = split(c.poll(rest))
    assert set(updates) == {r.remote_id for r in rest} and not failures
    assert all(len(u.documents) == 2 for u in updates.values())


# ---------------------------------------------------------------- intake downloads without a size


def test_a_download_without_a_listed_size_is_bounded_in_size(server: Scripted, tmp_path: Path) -> None:
    server.scripts["/intake/batches/B-1"] = [(200, {}, json.dumps({"files": [{"name": "a.pdf"}]}).encode())]
    server.scripts["/intake/batches/B-1/files/a.pdf"] = [(200, {"Content-Type": "application/pdf"}, b"%" * 300_000)]
    c = connector(server, retries=2, max_download_bytes=100_000)
    with pytest.raises(DeliveryError, match=r"max_download_bytes \(100000\)") as exc:
        c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    assert not exc.value.retryable and len(server.times("/intake/batches/B-1/files/a.pdf")) == 1
    assert list(tmp_path.iterdir()) == []  # no `.part` left
    # a listed size over the cap is refused before a byte is fetched
    server.scripts["/intake/batches/B-1"] = [(200, {}, b'{"files": [{"name": "a.pdf", "size": 300000}]}')]
    with pytest.raises(DeliveryError, match="max_download_bytes"):
        c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    assert len(server.times("/intake/batches/B-1/files/a.pdf")) == 1


def test_a_trickling_download_stops_at_max_call_seconds(server: Scripted, tmp_path: Path) -> None:
    server.scripts["/intake/batches/B-1"] = [(200, {}, json.dumps({"files": [{"name": "a.pdf"}]}).encode())]
    server.scripts["/intake/batches/B-1/files/a.pdf"] = [(200, {}, b"%" * 100_000)]
    server.trickle["/intake/batches/B-1/files/a.pdf"] = 4000  # 25 s for the file; never a 10 s silence
    c = connector(server, retries=3, max_call_seconds=1, timeout_seconds=10)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="max_call_seconds") as exc:
        c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    took = time.monotonic() - started
    assert exc.value.retryable and took < 2.5, took  # one call: retries within the same second
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- several credentials


def test_an_app_key_and_app_secret_pair_in_headers_and_query(server: Scripted) -> None:
    server.scripts["/health"] = [(200, {}, b"{}")]
    keys = {
        "headers": {"X-App-Key": SecretStr("ak-1"), "X-App-Secret": SecretStr("as-s3cret")},
        "query": {"appid": SecretStr("id-s3cret")},
    }
    c = connector(server, auth={"api_key": keys})
    assert c.check().ok
    ((target, headers),) = server.heard
    assert headers["X-App-Key"] == "ak-1" and headers["X-App-Secret"] == "as-s3cret"
    assert target == "/health?appid=id-s3cret"
    (shown,) = c.preview(part())
    text = shown.model_dump_json()
    assert "as-s3cret" not in text and "id-s3cret" not in text and "ak-1" not in text
    assert shown.headers["x-app-secret"] == "***" and "appid=%2A%2A%2A" in shown.summary
    # the single forms still work
    assert connector(server, auth={"api_key": {"header": "X-Api-Key", "value": SecretStr("k")}}).check().ok
    with pytest.raises(ValidationError, match="either header or query with value"):
        connector(server, auth={"api_key": {"header": "X-Api-Key", "headers": {"X-B": SecretStr("b")}}})


@pytest.mark.parametrize(
    ("where", "name"),
    [("headers", "X-App-Secret"), ("headers", "Authorization"), ("query", "access_token"), ("query", "sign")],
)
def test_a_literal_credential_in_a_request_template_is_refused_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, name: str
) -> None:
    monkeypatch.setenv("CASE_TOKEN", "t0ken")
    text = f"""\
type: rest
config:
  base_url: https://dept.example.gov.cn/api
  auth: {{bearer: "${{CASE_TOKEN}}"}}
  check: {{path: /me}}
  submit:
    path: /cases
    {where}:
      X-Request-Id: "{{{{ part.part_id }}}}"
      {name}: abc123literal
    remote_id: id
"""
    folder = tmp_path / "connections"
    folder.mkdir()
    (folder / "case.yaml").write_text(text, encoding="utf-8")
    conns, _ = load_connections(folder, TYPES)
    with pytest.raises(ConfigInvalid) as exc:
        conns["case"].make(TYPES)
    message = str(exc.value)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip() == f"{where}:")
    assert f"connections/case.yaml:{line}" in message and name in message and "auth" in message
    assert "abc123literal" not in message
    # a template (a value from the part, not a secret) under such a name is not a literal
    ok = text.replace("abc123literal", '"{{ part.part_id }}"')
    (folder / "case.yaml").write_text(ok, encoding="utf-8")
    conns, _ = load_connections(folder, TYPES)
    assert conns["case"].make(TYPES).longest_call() is not None
