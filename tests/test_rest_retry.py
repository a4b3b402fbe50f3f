"""The `rest` connector's retry policy (plugins/rest/retry.py) against a scripted HTTP server on
127.0.0.1: Retry-After is honoured but bounded, a refusal is not retried, the attempt count is
`retries + 1`, and file downloads follow the same policy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.connectors import Batch, DeliveryError
from tests.support.scripted_http import Scripted, connector, part, scripted_server


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as scripted:
        yield scripted


ACCEPTED = (201, {}, json.dumps({"id": "YB-1"}).encode())


def test_429_with_retry_after_is_honoured(server: Scripted) -> None:
    server.scripts["/parts"] = [(429, {"Retry-After": "1"}, b'{"error": "slow down"}'), ACCEPTED]
    c = connector(server, retries=3, max_retry_after_seconds=30)
    assert c.submit(part()).remote_id == "YB-1"
    first, second = server.times("/parts")
    assert 0.95 <= second - first < 5  # waited what the server asked, not the 0.2 s backoff


def test_retry_after_is_bounded_by_max_retry_after_seconds(server: Scripted) -> None:
    server.scripts["/parts"] = [(503, {"Retry-After": "3600"}, b"{}"), ACCEPTED]
    c = connector(server, retries=3, max_retry_after_seconds=0.3)
    started = time.monotonic()
    assert c.submit(part()).remote_id == "YB-1"
    assert time.monotonic() - started < 3  # not an hour
    first, second = server.times("/parts")
    assert second - first >= 0.25


def test_a_refusal_is_not_retried(server: Scripted) -> None:
    server.scripts["/parts"] = [(400, {"Retry-After": "0"}, b'{"error": "bad item_code"}'), ACCEPTED]
    c = connector(server, retries=5)
    with pytest.raises(DeliveryError, match="HTTP 400 bad item_code") as exc:
        c.submit(part())
    assert not exc.value.retryable
    assert len(server.times("/parts")) == 1


def test_retries_plus_one_attempts_then_the_last_error(server: Scripted) -> None:
    server.scripts["/parts"] = [(503, {"Retry-After": "0"}, b'{"error": "maintenance"}')]
    c = connector(server, retries=2)
    with pytest.raises(DeliveryError, match="HTTP 503 maintenance") as exc:
        c.submit(part())
    assert exc.value.retryable
    assert len(server.times("/parts")) == 3


def test_downloads_follow_the_same_policy(server: Scripted, tmp_path: Path) -> None:
    server.scripts["/intake/batches/B-1"] = [(200, {}, json.dumps({"files": [{"name": "a.pdf"}]}).encode())]
    server.scripts["/intake/batches/B-1/files/a.pdf"] = [
        (429, {"Retry-After": "1"}, b"{}"),
        (200, {"Content-Type": "application/pdf"}, b"%PDF-1.7 a"),
    ]
    c = connector(server, retries=2)
    c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    assert (tmp_path / "a.pdf").read_bytes() == b"%PDF-1.7 a"
    first, second = server.times("/intake/batches/B-1/files/a.pdf")
    assert second - first >= 0.95

    server.scripts["/intake/batches/B-1/files/a.pdf"] = [(403, {}, b'{"error": "not yours"}')]
    (tmp_path / "a.pdf").unlink()
    with pytest.raises(DeliveryError, match="HTTP 403") as exc:
        c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    assert not exc.value.retryable
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
