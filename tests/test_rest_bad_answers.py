"""Bad answers from a department become recorded errors (a DeliveryError for the call, a
PollFailure for one receipt), never a crash nor a false success; every answer is bounded in size,
total time and pages. Against real loopback servers: a scripted one and the case department."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import SecretStr

from hub.connectors import DeliveryError, PollFailure, Receipt, Update
from plugins.rest.connector import RestConnector
from plugins.rest.spec import RestSpec
from tests.support.rest_case_department import CaseDepartment
from tests.support.scripted_http import Scripted, part, scripted_server


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as scripted:
        yield scripted


def own(url: str, **over: Any) -> RestConnector:
    """A connection to a system with its own shapes (no profile)."""
    spec: dict[str, Any] = {
        "base_url": url,
        "auth": {"bearer": SecretStr("t0ken")},
        "retries": 0,
        "check": {"path": "/me"},
        "submit": {
            "path": "/cases",
            "body": {"ref": "{{ part.part_id }}"},
            "remote_id": "id",
            "success_statuses": [201],
        },
        "status": {
            "path": "/cases",
            "query": {"ids": "{{ join(',', remote_ids) }}"},
            "records": "items",
            "id": "id",
            "status": "state",
            "pagination": {"type": "cursor", "next": "next", "param": "cursor", "max_pages": 5},
        },
        "status_map": {"DONE": "approved", "WIP": "in_review"},
    }
    spec.update(over)
    return RestConnector("dept", RestSpec.model_validate(spec))


def answer(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> tuple:
    return (status, headers or {}, json.dumps(payload).encode())


RECEIPTS = [Receipt(part_id=f"p{i}", remote_id=f"C-{i}") for i in (1, 2)]


def test_200_with_a_body_that_is_not_json(server: Scripted) -> None:
    server.scripts["/cases"] = [(201, {"Content-Type": "text/html"}, b"<html>OK</html>")]
    with pytest.raises(DeliveryError, match="answer is not JSON") as exc:
        own(server.url).submit(part())
    assert not exc.value.retryable  # the case may exist: ops look, the same key is safe to send again
    server.scripts["/cases"] = [(200, {"Content-Type": "text/html"}, b"<html>busy</html>")]
    results = own(server.url).poll(RECEIPTS)
    assert [type(r) for r in results] == [PollFailure, PollFailure]
    assert all("not JSON" in r.message for r in results)  # type: ignore[union-attr]


def test_a_302_carrying_an_id_is_not_delivered(server: Scripted) -> None:
    server.scripts["/cases"] = [answer({"id": "C-1"}, 302, {"Location": "https://elsewhere.example/login"})]
    with pytest.raises(DeliveryError, match="HTTP 302") as exc:
        own(server.url).submit(part())
    assert not exc.value.retryable and "success statuses [201]" in str(exc.value)
    assert len(server.times("/cases")) == 1 and server.times("/login") == []  # not followed


def test_unknown_status_and_a_record_without_status_fail_only_their_receipt(server: Scripted) -> None:
    items = [{"id": "C-1", "state": "GUAQI"}, {"id": "C-2"}, {"id": "C-3", "state": "DONE"}]
    server.scripts["/cases"] = [answer({"items": items, "next": None})]
    receipts = [*RECEIPTS, Receipt(part_id="p3", remote_id="C-3")]
    unknown, missing, done = own(server.url).poll(receipts)
    assert isinstance(unknown, PollFailure) and '"GUAQI"' in unknown.message and "status_map" in unknown.message
    assert isinstance(missing, PollFailure) and "no status" in missing.message and "'state'" in missing.message
    assert isinstance(done, Update) and done.status == "approved"


def test_a_records_selector_that_finds_no_list(server: Scripted) -> None:
    server.scripts["/cases"] = [answer({"items": {"id": "C-1"}})]
    results = own(server.url).poll(RECEIPTS)
    assert all(isinstance(r, PollFailure) and "not a list" in r.message for r in results)


def test_pages_bounded_by_max_pages_and_a_repeating_cursor(server: Scripted) -> None:
    server.scripts["/cases"] = [answer({"items": [], "next": f"c{i}"}) for i in range(50)]
    results = own(server.url).poll(RECEIPTS)
    assert len(server.times("/cases")) == 5  # max_pages
    assert all(isinstance(r, PollFailure) and "max_pages (5)" in r.message for r in results)
    server.seen.clear()
    server.scripts["/cases"] = [answer({"items": [], "next": "same"})]
    results = own(server.url).poll(RECEIPTS)
    assert len(server.times("/cases")) == 2 and all("cursor repeats" in r.message for r in results)  # type: ignore[union-attr]


def test_a_poll_is_bounded_in_total_time() -> None:
    with CaseDepartment() as dept:
        spec = case_connection(dept, max_poll_seconds=0.5)
        dept.latency = 0.3
        receipts = []
        for i in range(5):  # five cases: three pages of two
            receipts.append(Receipt(part_id=f"p{i}", remote_id=spec.submit(part_n(i)).remote_id))
        started = time.monotonic()
        results = spec.poll(receipts)
        assert time.monotonic() - started < 2
    updates = [r for r in results if isinstance(r, Update)]
    failures = [r for r in results if isinstance(r, PollFailure)]
    assert len(updates) == 4 and len(failures) == 1 and "max_poll_seconds" in failures[0].message


def test_a_trickle_is_cut_by_the_total_time_of_the_call() -> None:
    with CaseDepartment() as dept:
        c = case_connection(dept, max_call_seconds=1, timeout_seconds=10, per_record=True)
        no = c.submit(part_n(1)).remote_id
        dept.decide(no, "WIP", "说明" * 10_000)  # a 60 KB record…
        dept.trickle = 1024  # …at 1 KiB/s: each read arrives well within the 10 s read timeout
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="max_call_seconds") as exc:
            c.poll([Receipt(part_id="p1", remote_id=no)])
        assert time.monotonic() - started < 3 and exc.value.retryable


def test_retry_after_nan_does_not_raise_and_an_http_date_is_honoured(server: Scripted) -> None:
    accepted = answer({"id": "C-1"}, 201)
    server.scripts["/cases"] = [(503, {"Retry-After": "nan"}, b"{}"), accepted]
    assert own(server.url, retries=2).submit(part()).remote_id == "C-1"
    server.seen.clear()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    server.scripts["/cases"] = [(503, {"Retry-After": when}, b"{}"), accepted]
    assert own(server.url, retries=2).submit(part()).remote_id == "C-1"
    first, second = server.times("/cases")
    assert 0.9 <= second - first < 5  # the date, to its one-second resolution; not the 0.2 s backoff


def test_link_header_pages_on_the_same_host_only(server: Scripted) -> None:
    link = {"Link": f'<{server.url}/cases?page=2>; rel="next"'}
    server.scripts["/cases"] = [
        answer({"items": [{"id": "C-1", "state": "DONE"}]}, headers=link),
        answer({"items": [{"id": "C-2", "state": "WIP"}]}),
    ]
    status = {"path": "/cases", "records": "items", "id": "id", "status": "state", "pagination": {"type": "link"}}
    results = own(server.url, status=status).poll(RECEIPTS)
    assert [(type(r), r.remote_id) for r in results] == [(Update, "C-1"), (Update, "C-2")]
    server.scripts["/cases"] = [answer({"items": []}, headers={"Link": '<https://evil.example/x>; rel="next"'})]
    results = own(server.url, status=status).poll(RECEIPTS)
    assert all(isinstance(r, PollFailure) and "another host" in r.message for r in results)


def test_page_number_pagination_stops_at_a_short_page(server: Scripted) -> None:
    server.scripts["/cases"] = [
        answer({"items": [{"id": "C-9", "state": "DONE"}, {"id": "C-8", "state": "DONE"}]}),
        answer({"items": [{"id": "C-1", "state": "DONE"}, {"id": "C-7", "state": "DONE"}]}),
        answer({"items": [{"id": "C-2", "state": "WIP"}]}),
    ]
    pagination = {"type": "page", "param": "pageNo", "size": 2, "size_param": "pageSize"}
    status = {"path": "/cases", "records": "items", "id": "id", "status": "state", "pagination": pagination}
    results = own(server.url, status=status).poll(RECEIPTS)
    assert len(server.times("/cases")) == 3 and {r.remote_id for r in results if isinstance(r, Update)} == {
        "C-1",
        "C-2",
    }


def test_a_document_link_to_another_host_is_not_fetched(server: Scripted) -> None:
    item = {"id": "C-1", "state": "DONE", "files": [{"name": "r.pdf", "href": "https://evil.example/r.pdf"}]}
    server.scripts["/cases"] = [answer({"items": [item]})]
    status = {
        "path": "/cases",
        "records": "items",
        "id": "id",
        "status": "state",
        "documents": {"items": "files", "url": "{{ href }}"},
    }
    (failure,) = own(server.url, status=status).poll(RECEIPTS[:1])
    assert isinstance(failure, PollFailure) and "another host" in failure.message


def test_a_system_without_a_status_request_has_nothing_to_poll(server: Scripted) -> None:
    assert own(server.url, status=None).poll(RECEIPTS) == []


# ---------------------------------------------------------------- helpers for the case department


def part_n(i: int):
    return part().model_copy(update={"part_id": f"00000000-0000-0000-0000-{i:012d}"})


def case_connection(dept: CaseDepartment, *, per_record: bool = False, **over: Any) -> RestConnector:
    status: dict[str, Any] = (
        {"path": "/cases/{{ remote_id }}", "status": "data.state", "reason": "data.remark"}
        if per_record
        else {
            "path": "/cases",
            "query": {"ids": "{{ join(',', remote_ids) }}"},
            "records": "data.items",
            "id": "caseNo",
            "status": "state",
            "pagination": {"type": "cursor", "next": "meta.next", "param": "cursor"},
        }
    )
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
        "status": status,
        "status_map": {"NEW": "received", "WIP": "in_review", "DONE": "approved"},
        **over,
    }
    return RestConnector("case", RestSpec.model_validate(spec))


@pytest.mark.parametrize(
    ("auth", "where"),
    [
        ({"api_key": {"header": "X-Api-Key", "value": SecretStr("k3y")}}, "header"),
        ({"api_key": {"query": "appkey", "value": SecretStr("k3y")}}, "query"),
    ],
)
def test_api_key_in_a_header_or_the_query(server: Scripted, auth: dict, where: str) -> None:
    server.scripts["/me"] = [answer({"me": "hub"})]
    assert own(server.url, auth=auth).check().ok
    ((target, headers),) = server.heard
    if where == "header":
        assert headers["X-Api-Key"] == "k3y" and "k3y" not in target
    else:
        assert target == "/me?appkey=k3y" and "k3y" not in json.dumps(headers)


def test_a_stateless_system_answers_with_its_decision(server: Scripted) -> None:
    submit = {
        "path": "/check",
        "body": {"ref": "{{ part.part_id }}"},
        "remote_id": "ticket",
        "decision": {"status": "result.passed", "reason": "result.note"},
    }
    c = own(server.url, submit=submit, status=None, status_map={"true": "approved", "false": "denied"})
    server.scripts["/check"] = [answer({"ticket": 7, "result": {"passed": False, "note": "户籍不符"}})]
    receipt = c.submit(part())
    assert receipt.remote_id == "7" and receipt.update is not None
    assert (receipt.update.status, receipt.update.reason) == ("denied", "户籍不符")
    server.scripts["/check"] = [answer({"ticket": 8, "result": {"passed": "maybe"}})]
    with pytest.raises(DeliveryError, match='unmapped status "maybe"') as exc:
        c.submit(part())
    assert not exc.value.retryable


def test_render_shows_what_would_be_sent_without_the_credential(server: Scripted) -> None:
    shown = own(server.url, auth={"bearer": SecretStr("t0ken-s3cret")}).render(part())
    assert shown["method"] == "POST" and shown["url"] == server.url + "/cases"
    assert shown["body"] == {"ref": part().part_id} and "t0ken-s3cret" not in json.dumps(shown)
    assert server.heard == []  # nothing sent


def test_preview_masks_every_credential_and_sends_nothing(server: Scripted) -> None:
    for auth_conf, secret in (
        ({"bearer": SecretStr("t0ken-s3cret")}, "t0ken-s3cret"),
        ({"api_key": {"header": "X-Api-Key", "value": SecretStr("k3y-s3cret")}}, "k3y-s3cret"),
        ({"api_key": {"query": "appkey", "value": SecretStr("q-s3cret")}}, "q-s3cret"),
        ({"hmac": {"key_id": "hub", "secret": SecretStr("h-s3cret")}}, "h-s3cret"),
    ):
        (shown,) = own(server.url, auth=auth_conf).preview(part())
        text = shown.model_dump_json()
        assert secret not in text, auth_conf
        assert "***" in text or "appkey=%2A%2A%2A" in text, auth_conf
        assert shown.summary.startswith(f"POST {server.url}/cases")
        assert json.loads(shown.body) == {"ref": part().part_id}
    assert server.heard == []
