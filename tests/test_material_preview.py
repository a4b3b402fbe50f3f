"""The inline preview of a material (/applications/N/materials/ID/view): only the types a page can
show (PDF, JPEG, PNG) are served inline and frameable by our own pages; anything else (OFD) is a
download under the pages' strict policy."""

from __future__ import annotations

import io
import re
import zipfile

from fastapi.testclient import TestClient

from hub import applications as svc
from hub.users import add_user
from hub.web.app import create_app
from tests.support.samples import TELLER, elderly_card


def _ofd() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'/>")
    return out.getvalue()


def test_only_previewable_types_are_framed_inline(hub):
    new = elderly_card()
    materials = [
        m if m.name != "居民身份证" else svc.MaterialIn(name=m.name, filename="id.ofd", content=_ofd())
        for m in new.materials
    ]
    app = svc.create(hub, new.model_copy(update={"materials": materials}), TELLER)
    ids = {m.filename: m.id for m in app.materials}
    add_user(hub, "wangfang", "xiahong-柜台-2026", display_name="王芳", role=TELLER.role, desk=TELLER.desk)
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as web:
        token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
        web.post("/login", data={"username": "wangfang", "password": "xiahong-柜台-2026", "csrf_token": token})
        ofd = web.get(f"/applications/{app.number}/materials/{ids['id.ofd']}/view")
        pdf = web.get(f"/applications/{app.number}/materials/{ids['agent-id.pdf']}/view")
    assert ofd.status_code == 200 and ofd.headers["content-disposition"].startswith("attachment;")
    assert ofd.headers["x-frame-options"] == "DENY"
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].startswith("inline;")
    assert (
        pdf.headers["x-frame-options"] == "SAMEORIGIN"
        and "frame-ancestors 'self'" in pdf.headers["content-security-policy"]
    )
