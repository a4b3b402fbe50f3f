"""What a seal costs (电子印章, issue 19): `seal_pdf` and `verify_pdf` per document, for each seal
algorithm, against rendering the same one-page notice with fpdf2 (hub.pdf) in the same run — the
baseline the issue's goal is stated against (sealing adds < 50 % over rendering).

    .venv/bin/python benchmarks/seals.py [--n 30] [--algorithms ecdsa-p256,rsa-2048,sm2]

A fresh hub home (hub.home.write_home, SQLite in memory: no database work is timed) with test
seals of each algorithm. Each figure is the median of --n runs; the first run of each is left out
(it loads the seal and draws its image, once per process). The ratio is seal ÷ render."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub import pdf as hub_pdf  # noqa: E402
from hub.context import Hub  # noqa: E402
from hub.home import write_home  # noqa: E402
from hub.seals import ensure_test_seals, seal_pdf, verify_pdf  # noqa: E402


def render() -> bytes:
    doc = hub_pdf.new_document("受理通知书")
    doc.add_page()
    doc.set_font("cjk", size=16)
    doc.cell(0, 12, text="泰顺县民政局 受理通知书", align="C")
    doc.ln(16)
    doc.set_font("cjk", size=11)
    for i in range(20):
        doc.set_x(20)
        doc.multi_cell(
            170, 7, text=f"{i + 1}. 申请人张三申请的老年人优待证办理事项，经审查符合受理条件，承诺办结时限五个工作日。"
        )
    return hub_pdf.output(doc)


def median_ms(work, n: int) -> float:
    work()  # warm: caches, the seal image
    times = []
    for _ in range(n):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--algorithms", default="ecdsa-p256,rsa-2048,sm2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = write_home(Path(tmp) / "home")
        hub = Hub.open(home, database_url="sqlite://")
        try:
            rendered = render()
            render_ms = median_ms(render, args.n)
            print(f"render one page (fpdf2, CJK font embedded): {render_ms:.1f} ms, {len(rendered)} bytes")
            print("| algorithm | seal ms | verify ms | seal ÷ render | sealed bytes |")
            print("|---|---|---|---|---|")
            for alg in args.algorithms.split(","):
                ensure_test_seals(hub, algorithm=alg, force=True)
                sealed = seal_pdf(hub, rendered, "ts-mzj")
                assert verify_pdf(hub, sealed)[0].ok
                seal_ms = median_ms(lambda: seal_pdf(hub, rendered, "ts-mzj"), args.n)
                verify_ms = median_ms(lambda done=sealed: verify_pdf(hub, done), max(5, args.n // 3))
                print(f"| {alg} | {seal_ms:.1f} | {verify_ms:.1f} | {seal_ms / render_ms:.2f} | {len(sealed)} |")
        finally:
            hub.close()


if __name__ == "__main__":
    main()
