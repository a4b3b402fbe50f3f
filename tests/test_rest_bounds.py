"""What a department system sends the `rest` connector is bounded: an answer's size (after
decompression), an error's body, and the pages of a poll."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.connectors import Batch, DeliveryError, PollFailure, Receipt, Update
from tests.support.scripted_http import Scripted, connector, part, scripted_server


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as scripted:
        yield scripted


def test_an_answer_larger_than_max_answer_bytes_is_refused(server: Scripted) -> None:
    big = json.dumps({"id": "YB-1", "padding": "x" * 4096}).encode()
    server.scripts["/parts"] = [(201, {}, big)]
    with pytest.raises(DeliveryError, match="answer larger than max_answer_bytes") as exc:
        connector(server, max_answer_bytes=1024).submit(part())
    assert not exc.value.retryable
    assert len(server.times("/parts")) == 1


def test_a_compressed_answer_is_bounded_once_unpacked(server: Scripted) -> None:
    bomb = gzip.compress(json.dumps({"id": "YB-1", "padding": "0" * 2**21}).encode())  # ~2 KiB -> 2 MiB
    assert len(bomb) < 2**20
    server.scripts["/parts"] = [(201, {"Content-Encoding": "gzip"}, bomb)]
    with pytest.raises(DeliveryError, match="answer larger"):
        connector(server, max_answer_bytes=2**20).submit(part())

    # within the bound, a compressed answer reads as before
    server.scripts["/parts"] = [(201, {"Content-Encoding": "gzip"}, gzip.compress(b'{"id": "YB-2"}'))]
    assert connector(server).submit(part()).remote_id == "YB-2"


def test_an_error_body_is_read_only_as_far_as_its_detail(server: Scripted) -> None:
    body = json.dumps({"error": "refused: " + "y" * 2**20}).encode()  # 1 MiB of error message
    server.scripts["/parts"] = [(422, {}, body)]
    with pytest.raises(DeliveryError, match="HTTP 422") as exc:
        connector(server).submit(part())
    assert not exc.value.retryable
    assert len(str(exc.value)) < 400


def test_a_poll_whose_cursor_repeats_stops(server: Scripted, caplog: pytest.LogCaptureFixture) -> None:
    item = {"id": "YB-1", "status": "approved", "documents": []}
    server.scripts["/parts"] = [(200, {}, json.dumps({"items": [item], "next_page": 2}).encode())]
    receipts = [Receipt(part_id=f"p{i}", remote_id=f"YB-{i}") for i in range(1, 4)]
    with caplog.at_level(logging.WARNING):
        results = connector(server).poll(receipts)
    assert len(server.times("/parts")) == 2  # page 2 points at page 2 again: seen, stopped
    updates = [r for r in results if isinstance(r, Update)]
    failures = {r.remote_id: r.message for r in results if isinstance(r, PollFailure)}
    assert [u.remote_id for u in updates] == ["YB-1"]
    # the receipts the cut-off listing never reached are recorded, not silently "no news"
    assert set(failures) == {"YB-2", "YB-3"} and all("pages never end" in m for m in failures.values())
    assert "profiles/hub-api.yaml" in failures["YB-2"] and "pages never end" in caplog.text


def test_a_poll_whose_cursor_never_ends_stops_at_max_pages(server: Scripted) -> None:
    class Counting:  # a fresh cursor on every page: only max_pages stops it
        n = 0

    def page() -> tuple[int, dict[str, str], bytes]:
        Counting.n += 1
        return (200, {}, json.dumps({"items": [], "next_page": Counting.n + 1}).encode())

    server.scripts["/parts"] = [page() for _ in range(200)]
    c = connector(
        server, status={"pagination": {"type": "cursor", "next": "next_page", "param": "page", "max_pages": 7}}
    )
    (failure,) = c.poll([Receipt(part_id="p1", remote_id="YB-1")])
    assert isinstance(failure, PollFailure) and "max_pages (7)" in failure.message
    assert len(server.times("/parts")) == 7


def test_a_batch_file_is_downloaded_only_up_to_its_listed_size(server: Scripted, tmp_path: Path) -> None:
    listing = {"files": [{"name": "a.pdf", "size": 10}]}
    server.scripts["/intake/batches/B-1"] = [(200, {}, json.dumps(listing).encode())]
    c = connector(server, retries=1)
    for body, why in ((b"%PDF-1.7 a" + b"x" * 2**20, "it grew"), (b"%PDF", "bytes missing")):
        server.scripts["/intake/batches/B-1/files/a.pdf"] = [(200, {"Content-Type": "application/pdf"}, body)]
        with pytest.raises(DeliveryError, match=f"not the listed size: {why}") as exc:
            c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
        assert exc.value.retryable
        assert list(tmp_path.iterdir()) == []  # nothing written past the size, no `.part` left
    assert len(server.times("/intake/batches/B-1/files/a.pdf")) == 4  # each tried retries + 1 times

    server.scripts["/intake/batches/B-1/files/a.pdf"] = [(200, {}, b"%PDF-1.7 a")]
    c.fetch(Batch(id="B-1", name="B-1"), tmp_path)
    assert (tmp_path / "a.pdf").read_bytes() == b"%PDF-1.7 a"
