"""Sealed notices per second (render + seal) versus rendering the same PDFs unsigned, in the same
run (issue 19): the ratio, and where the time goes.

    .venv/bin/python benchmarks/notices.py [--rounds 3] [--per-kind 10] [--profile]

A sandbox hub home (SQLite, the sample catalogue, the test CA and seals) in a temporary folder;
one 老年人优待证 application walked through every step that owes a notice (收件凭证, 受理通知书,
补正告知书, 准予决定书, 出件通知书, 送达回证), one refused (不予受理通知书) and one denied
(不予决定书): eight documents. Each round times, for every document, --per-kind times over:

- unsigned: the template filled in and the page drawn (`hub.documents.issue.render_unsigned`:
  Jinja, fpdf2, the cut CJK font subset into the file, two QR codes);
- sealed: the same and `hub.seals.seal_pdf` (pyHanko PAdES B-B, ECDSA P-256, visible stamp).

The baseline for the font: a one-line A4 page with the full Noto Sans CJK SC face (what every
document cost before the cut font) and with the cut face.

Printed: documents per second of CPU time each way (this process, one thread: on a shared machine
wall time measures the neighbours too), the ratio sealed/unsigned (the goal: sealing adds less than
50 %), the font baseline, and with --profile the top functions of one sealed round by cumulative
time. Storing the file and the row (`issue`) is not timed: it is a write like any material's."""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub import applications as svc
from hub import pdf as hubpdf
from hub import seals
from hub.context import Hub
from hub.documents import documents_of
from hub.documents.issue import render_unsigned
from hub.home import write_home
from hub.storage import migrate
from hub.storage.engine import make_engine
from tests.support.samples import TELLER, elderly_card, officer

MZJ = officer("ts-mzj", "民政审批员")
WHERE = [  # (label, file ending, function): the stages of one sealed notice
    ("render + seal", "benchmarks/notices.py", "sealed"),
    ("  render (template, page, font, file)", "hub/documents/issue.py", "render_unsigned"),
    ("    Jinja: the template filled in", "hub/documents/templates.py", "render"),
    ("    fpdf2: open the cut font (parse)", "fpdf/fpdf.py", "add_font"),
    ("    fpdf2: write the file (subset the font, compress)", "fpdf/fpdf.py", "output"),
    ("    QR codes (segno PNG)", "hub/documents/render.py", "_qr_png"),
    ("  seal (pyHanko PAdES B-B)", "hub/seals/pades.py", "seal_pdf"),
    ("    load the seal key and certificate", "hub/seals/store.py", "load_seal"),
    ("    pyHanko sign_pdf (stamp, digest, CMS, write)", "pyhanko/sign/signers/pdf_signer.py", "sign_pdf"),
]


def setup(folder: Path) -> tuple[Hub, list]:
    home = write_home(folder / "home")
    url = f"sqlite:///{folder / 'hub.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    start = datetime(2026, 9, 21, 10, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    hub = Hub.open(home, database_url=url, clock=lambda: start)
    seals.ensure_test_seals(hub)
    ask = svc.SupplementAsk(
        fields=[svc.Wanted(name="contact_phone", note="电话无法接通，请核对。")],
        materials=[svc.Wanted(name="近期免冠彩色证件照", note="须近期免冠彩色照片")],
    )
    number = svc.create(hub, elderly_card(), TELLER).number
    for action, kw in [
        ("accept", {}),
        ("request_supplement", {"reason": "照片不合格。", "ask": ask}),
        ("resume", {}),
        ("start_review", {}),
        ("approve", {}),
        ("issue", {}),
        ("deliver", {}),
    ]:
        svc.transition(hub, number, action, MZJ, **kw)
    refused = svc.create(hub, elderly_card(), TELLER).number
    svc.transition(hub, refused, "reject", MZJ, reason="不属于本机关职权范围。")
    denied = svc.create(hub, elderly_card(), TELLER).number
    for action, kw in [("accept", {}), ("start_review", {}), ("deny", {"reason": "已持有有效优待证。"})]:
        svc.transition(hub, denied, action, MZJ, **kw)
    docs = []
    for n in (number, refused, denied):
        docs += [(d, n) for d in documents_of(hub, svc.read(hub, n, svc.SYSTEM))]
    return hub, docs


def unsigned(hub: Hub, docs: list, per_kind: int) -> int:
    for doc, number in docs:
        for _ in range(per_kind):
            render_unsigned(hub, doc, number)
    return len(docs) * per_kind


def sealed(hub: Hub, docs: list, per_kind: int) -> int:
    for doc, number in docs:
        for _ in range(per_kind):
            page = render_unsigned(hub, doc, number)
            seals.seal_pdf(hub, page.pdf, doc.authority, page=page.page, box=page.box, reason=doc.kind)
    return len(docs) * per_kind


def font_page(cut: bool) -> None:
    line = "受理通知书：泰顺县民政局 2026年9月21日"
    pdf = hubpdf.new_document("font", text=line if cut else None)
    pdf.add_page()
    pdf.cell(0, 10, line)
    hubpdf.output(pdf)


def rate(fn, *args) -> float:
    """Documents per second of this process's CPU time: the machine is shared, and both sides
    run on one thread, so CPU time is what each costs (wall time is printed beside it)."""
    t = time.process_time()
    n = fn(*args)
    return n / (time.process_time() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub, docs = setup(Path(tmp))
        print(f"machine: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}; {len(docs)} documents:")
        print("  " + ", ".join(sorted({d.kind for d, _ in docs})))
        font_page(True)  # the cut font made (once per machine), imports warmed
        sealed(hub, docs[:1], 1)
        rows = []
        for r in range(args.rounds):
            u = rate(unsigned, hub, docs, args.per_kind)
            s = rate(sealed, hub, docs, args.per_kind)
            rows.append((u, s))
            print(f"round {r + 1}: unsigned {u:6.1f}/s  sealed {s:6.1f}/s  sealing adds {u / s - 1:5.1%}")
        mu = statistics.median(u for u, _ in rows)
        ms = statistics.median(s for _, s in rows)
        print(f"median: unsigned {mu:.1f}/s ({1000 / mu:.1f} ms), sealed {ms:.1f}/s ({1000 / ms:.1f} ms)")
        print(f"ratio sealed/unsigned time: {mu / ms:.2f} (sealing adds {mu / ms - 1:.0%}; goal < 50 %)")
        cut_new = hubpdf.new_document
        hubpdf.new_document = lambda title, **_kw: cut_new(title)  # both full faces, as before the cut
        try:
            before = rate(unsigned, hub, docs, 1)
        finally:
            hubpdf.new_document = cut_new
        print(
            f"the same, unsigned, with both full faces (before the cut font): {before:.1f}/s ({1000 / before:.0f} ms)"
        )
        t = time.process_time()
        for _ in range(3):
            font_page(False)
        full = (time.process_time() - t) / 3
        t = time.process_time()
        for _ in range(20):
            font_page(True)
        cut = (time.process_time() - t) / 20
        print(
            f"font alone, a one-line page (CPU): full face {full * 1000:.0f} ms, cut face {cut * 1000:.0f} ms ({full / cut:.1f}x)"
        )
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            sealed(hub, docs, 3)
            prof.disable()
            stats = pstats.Stats(prof, stream=io.StringIO())
            n = len(docs) * 3
            print(f"where one sealed document's time goes (cProfile, cumulative, per document of {n}):")
            for label, file_part, func in WHERE:
                cum = sum(v[3] for (f, _line, name), v in stats.stats.items() if name == func and f.endswith(file_part))
                print(f"  {label:<52} {cum / n * 1000:7.1f} ms")
        hub.close()


if __name__ == "__main__":
    main()
