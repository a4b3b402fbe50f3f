"""SOAP delivery throughput: parts/s through the hub's declarative `soap` connector (the message
rendered from the connection's per-verb template, zeep serialisation, WS-Security digest, the
answer read as plain data and mapped with JMESPath) versus posting the identical envelopes with a
bare httpx client, same sandbox server, same concurrency. Then the mapping overhead per part in
µs, measured alone (no network): the request (part -> template context -> message fitted to the
WSDL's types) and the answer (zeep's object -> plain data -> remote_id selector), and the request
again with one 1 MiB material inline (base64 in the template context, decoded for the WSDL's
xsd:base64Binary element; the VIES-shaped WSDL of the tests).

    PYTHONPATH=. .venv/bin/python benchmarks/soap_throughput.py [--parts 600] [--concurrency 4]

Both runs submit fresh part ids (new cases on the department side). The baseline's envelopes are
built by zeep beforehand, untimed, so it measures only transport and the server."""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from lxml import etree

from hub import mapping
from hub.connectors import MaterialDelivery, MaterialRef, PartMessage
from plugins.sandbox.soap_department import SoapDepartment
from plugins.soap.connector import SoapConnector
from plugins.soap.spec import SoapSpec

PASSWORD = "bench-pw"


def part(i: int, run: str) -> PartMessage:
    return PartMessage(
        part_id=f"{run}-{i}",
        application_number=f"330329-20261122-{i:05d}",
        item_code="QR00117001",
        item_title="户口登记（出生登记）",
        department="ts-gaj",
        channel="bank",
        desk="bank-xiahong",
        collecting_division="330329",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="林阿婆",
        applicant_id="330329195003150214",
        form={"household_address": "罗阳镇下洪社区"},
    )


def spec(dept) -> SoapSpec:
    os.environ["BENCH_SOAP_PW"] = PASSWORD
    return SoapSpec.model_validate(
        {
            "wsdl": dept.wsdl_url,
            "wsse": {"username": "hub", "password": "${BENCH_SOAP_PW}"},
            "submit": {
                "operation": "SubmitPart",
                "message": {
                    "partId": "{{ part.part_id }}",
                    "itemCode": "{{ part.item_code }}",
                    "applicantName": "{{ part.applicant_name }}",
                    "applicantId": "{{ part.applicant_id }}",
                    "detail": "{{ part.form.household_address }}",
                },
                "remote_id": "caseId",
            },
        }
    )


def _per_part_us(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def mapping_overhead(connector: SoapConnector, answer, n: int = 2000) -> tuple[float, float]:
    """µs per part for the request mapping and the answer mapping, without the network."""
    call = connector.spec.submit
    assert call is not None and call.remote_id is not None
    operation = connector._operations()[call.operation]
    parts = [part(i, "map") for i in range(n)]
    request = _per_part_us(lambda p: connector._message(call, mapping.part_context(p), "submit"), parts)

    def read(_: int) -> None:
        data = connector._data(answer, operation)
        mapping.search(call.remote_id, data, "bench", required=True)

    return request, _per_part_us(read, range(n))


class _OneMiB:
    """Material access holding one 1 MiB file."""

    data = os.urandom(2**20)
    ref = MaterialRef(
        name="营业执照",
        filename="licence.pdf",
        sha256=hashlib.sha256(data).hexdigest(),
        media_type="application/pdf",
        size=len(data),
    )

    def read(self, ref: MaterialRef) -> bytes:
        return self.data


def inline_overhead(n: int = 50) -> float:
    """µs per part to map a part with one 1 MiB material inline (VIES-shaped test WSDL, offline)."""
    wsdl = Path(__file__).resolve().parent.parent / "tests" / "data" / "vies_vat.wsdl"
    connector = SoapConnector(
        "bench-vat",
        SoapSpec.model_validate(
            {
                "wsdl": str(wsdl),
                "endpoint": "http://127.0.0.1:9/never-called",
                "materials": {"mode": "inline"},
                "submit": {
                    "operation": "submitCase",
                    "message": {
                        "reference": "{{ part.part_id }}",
                        "countryCode": "CN",
                        "vatNumber": "{{ part.applicant_id }}",
                        "applicantName": "{{ part.applicant_name }}",
                        "attachment": "{{ materials[*].{fileName: filename, mediaType: media_type, "
                        "sha256: sha256, content: content} }}",
                    },
                },
            }
        ),
    )
    store = _OneMiB()
    connector.materials = store  # type: ignore[assignment]
    call = connector.spec.submit
    assert call is not None
    delivery = MaterialDelivery(mode="inline")
    parts = [part(i, "inline").model_copy(update={"materials": [store.ref]}) for i in range(n)]
    return _per_part_us(lambda p: connector._message(call, mapping.part_context(p, delivery, store), "submit"), parts)


def timed(fn, items, concurrency: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - start


def _serve(conn) -> None:
    """The department in its own process, so its cost does not share the client's interpreter."""
    dept = SoapDepartment(password=PASSWORD).start()
    conn.send((dept.url, dept.wsdl_url))
    conn.recv()  # stop
    conn.send(dept.submissions.total())
    dept.stop()


class RemoteDepartment:
    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        self.url, self.wsdl_url = self._conn.recv()

    def stop(self) -> int:
        self._conn.send("stop")
        total = self._conn.recv()
        self._proc.join(timeout=10)
        return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    dept = RemoteDepartment()
    cases = None
    try:
        connector = SoapConnector("bench-gongan", spec(dept))
        connector.submit(part(-1, "warm"))  # WSDL fetched and parsed once, outside the timing

        hub_parts = [part(i, "hub") for i in range(args.parts)]
        cpu = time.process_time()
        hub_seconds = timed(connector.submit, hub_parts, args.concurrency)
        hub_cpu_us = (time.process_time() - cpu) / args.parts * 1e6  # this process: the hub's side only

        # The baseline: the same envelopes (zeep-built, with WS-Security), posted by bare httpx.
        client = connector.client
        envelopes = [
            etree.tostring(
                client.create_message(
                    client.service,
                    "SubmitPart",
                    partId=p.part_id,
                    itemCode=p.item_code,
                    applicantName=p.applicant_name,
                    applicantId=p.applicant_id,
                    detail=p.form["household_address"],
                )
            )
            for p in (part(i, "bare") for i in range(args.parts))
        ]
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:taishun:gongan:1#SubmitPart"'}
        with httpx.Client() as http:

            def post(body: bytes) -> None:
                r = http.post(dept.url, content=body, headers=headers)
                r.raise_for_status()

            bare_seconds = timed(post, envelopes, args.concurrency)
        answer = connector.service.SubmitPart(  # one real zeep answer object, for the answer mapping
            partId="answer-sample", itemCode="QR00117001", applicantName="林阿婆", applicantId="330329195003150214"
        )
    finally:
        cases = dept.stop()
    assert cases == 2 * args.parts + 2, f"every part must have become one case, got {cases}"
    request_us, answer_us = mapping_overhead(connector, answer)
    inline_us = inline_overhead()
    hub_rate, bare_rate = args.parts / hub_seconds, args.parts / bare_seconds
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"parts={args.parts} concurrency={args.concurrency}")
    print(f"soap connector : {hub_rate:8.1f} parts/s")
    print(f"bare httpx     : {bare_rate:8.1f} parts/s")
    print(f"ratio connector/bare = {hub_rate / bare_rate:.2f} (goal >= 0.5)")
    print(
        f"mapping per part: request {request_us:.0f} µs, answer {answer_us:.0f} µs "
        f"(of {hub_cpu_us:.0f} µs of the hub's CPU per part); "
        f"request with one 1 MiB material inline {inline_us:.0f} µs"
    )


if __name__ == "__main__":
    main()
