"""Declarative REST submit throughput: parts/s through the hub's `rest` connector (the part's
context built, one 1 MB material read from disk, checked against its sha256 and base64-encoded
inline, the body template rendered, OAuth2 bearer added, the answer read within its bounds and
`remote_id` selected by JMESPath) versus a bare httpx POST of the identical body with the same
token, same department server, same concurrency. Also the mapping overhead per part in µs.

    .venv/bin/python benchmarks/rest_declarative.py [--parts 200] [--concurrency 4] [--mb 1]

The department (tests/support/rest_case_department.py: decodes every attachment and checks its
sha256) runs in its own process, so it does not share the client's GIL. Each submit has a fresh
X-Request-Id (a new case on the department side). The baseline's body is rendered by the
connector beforehand, untimed, so it measures only transport and the server."""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.connectors import DeliveryError, MaterialRef, PartMessage
from plugins.rest.connector import RestConnector
from plugins.rest.spec import RestSpec

SECRET = "bench-secret"


class DiskMaterials:
    """hub.outgoing_materials in miniature: the file read from disk and checked against its sha256."""

    def __init__(self, folder: Path):
        self.folder = folder

    def read(self, ref: MaterialRef) -> bytes:
        data = (self.folder / ref.sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise DeliveryError("sha256 mismatch", retryable=False)
        return data

    def open(self, ref: MaterialRef) -> Any:
        raise NotImplementedError

    def url(self, ref: MaterialRef, part_id: str, ttl_hours: float = 72) -> str:
        raise NotImplementedError


def serve(queue: Any, stop: Any) -> None:
    from tests.support.rest_case_department import CaseDepartment

    with CaseDepartment(client_secret=SECRET) as dept:
        queue.put((dept.url, dept.root))
        stop.wait()


def part(i: int, run: str, ref: MaterialRef) -> PartMessage:
    return PartMessage(
        part_id=f"{run}-{i:06d}",
        application_number=f"330329-20261122-{i:05d}",
        item_code="GG00301001",
        item_title="基本医疗保险异地就医备案",
        department="ts-ybj",
        channel="enclave",
        desk="enclave-hangzhou",
        collecting_division="330105",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="陈志强",
        applicant_id="330329199007010137",
        form={"contact_phone": "13857712345", "destination_division": "330105"},
        materials=[ref],
    )


def connector(url: str, root: str, folder: Path, mode: str = "inline") -> RestConnector:
    spec = RestSpec.model_validate(
        {
            "base_url": url,
            "auth": {
                "oauth2": {
                    "token_url": f"{root}/oauth/token",
                    "client_id": "tongban-hub",
                    "client_secret": SecretStr(SECRET),
                }
            },
            "retries": 0,
            "materials": {"mode": mode},
            "check": {"path": "/me"},
            "submit": {
                "path": "/cases",
                "headers": {"X-Request-Id": "{{ part.part_id }}"},
                "body": {
                    "caseType": "{{ part.item_code }}",
                    "title": "{{ part.item_title }}（{{ part.desk }}）",
                    "applicant": {"name": "{{ part.applicant_name }}", "idNo": "{{ part.applicant_id }}"},
                    "form": "{{ part.form }}",
                    "attachments": "{{ materials[*].{fileName: filename, sha256: sha256, data: content} }}",
                },
                "remote_id": "data.caseNo",
            },
        }
    )
    c = RestConnector("bench", spec)
    c.materials = DiskMaterials(folder)
    return c


def timed(concurrency: int, n: int, one: Any) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="rest-bench-"))
    content = b"%PDF-1.7\n" + os.urandom(int(args.mb * 2**20))
    sha = hashlib.sha256(content).hexdigest()
    (folder / sha).write_bytes(content)
    ref = MaterialRef(name="居民身份证", filename="id.pdf", sha256=sha, media_type="application/pdf", size=len(content))

    ctx = multiprocessing.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(queue, stop), daemon=True)
    server.start()
    url, root = queue.get(timeout=60)
    try:
        c = connector(url, root, folder)
        assert c.check().ok
        # the baseline: the identical body and headers, rendered once, sent by a bare client
        rendered = c._render(c.spec.submit, c.context(part(0, "base", ref)), ("submit",))  # type: ignore[arg-type]
        body = httpx.Request("POST", url, json=rendered["body"]).content
        token = c._auth.token()  # type: ignore[attr-defined]
        bare = httpx.Client(timeout=30)

        def baseline(i: int, run: str) -> None:
            r = bare.post(
                url + "/cases",
                content=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "X-Request-Id": f"{run}-{i:06d}",
                },
            )
            assert r.status_code == 201 and r.json()["data"]["caseNo"]

        def declarative(i: int, run: str) -> None:
            assert c.submit(part(i, run, ref)).remote_id

        results: dict[str, list[float]] = {"bare": [], "declarative": []}
        for rnd in range(args.rounds):  # interleaved: drift on a shared machine hits both alike
            results["bare"].append(timed(args.concurrency, args.parts, lambda i, r=rnd: baseline(i, f"b{r}")))
            results["declarative"].append(timed(args.concurrency, args.parts, lambda i, r=rnd: declarative(i, f"d{r}")))
        bare_rate, decl_rate = (statistics.median(results[k]) for k in ("bare", "declarative"))

        # mapping overhead per part: context + render (no I/O), with and without the inline material
        plain = connector(url, root, folder, mode="none")
        sample = part(1, "m", ref)
        overhead = {}
        for label, conn in (("mapping only (materials: none)", plain), (f"with {args.mb:g} MB inline", c)):
            n = 2000 if conn is plain else 50
            started = time.perf_counter()
            for _ in range(n):
                conn._render(conn.spec.submit, conn.context(sample), ("submit",))  # type: ignore[arg-type]
            overhead[label] = (time.perf_counter() - started) / n * 1e6
    finally:
        stop.set()
        server.join(timeout=10)

    print(f"# rest declarative submit — {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"parts {args.parts} × {args.rounds} rounds, concurrency {args.concurrency}, material {args.mb:g} MB inline")
    print(f"bare httpx POST      : {bare_rate:8.1f} parts/s  (rounds {', '.join(f'{x:.1f}' for x in results['bare'])})")
    print(
        f"declarative submit   : {decl_rate:8.1f} parts/s  "
        f"(rounds {', '.join(f'{x:.1f}' for x in results['declarative'])})"
    )
    print(f"ratio                : {decl_rate / bare_rate:8.2f} × (goal ≥ 0.6)")
    for label, us in overhead.items():
        print(f"mapping per part, {label}: {us:,.0f} µs")


if __name__ == "__main__":
    main()
