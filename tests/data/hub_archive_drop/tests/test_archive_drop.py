"""The plugin's own tests, as its author would write them: the connector made through the hub's
own Connection.make (so secrets are enforced as references), fed a part, its folder inspected."""

import hashlib
import json

import pytest
from hub_archive_drop.connector import ArchiveDrop

from hub.connection_config import load_connections
from hub.connectors import MaterialRef, PartMessage, Receipt, Update
from hub.errors import ConfigInvalid

PDF = b"%PDF-1.4 archive test\n%%EOF\n"


class Store:
    """The material access the hub gives a connector, over one in-memory file."""

    def open(self, ref):
        import io

        return io.BytesIO(PDF)


def connector(tmp_path, monkeypatch, key="${ARCHIVE_KEY}"):
    (tmp_path / "import").mkdir(exist_ok=True)
    conns = tmp_path / "connections"
    conns.mkdir(exist_ok=True)
    (conns / "archive.yaml").write_text(
        f"type: archive-drop\nconfig:\n  folder: {tmp_path / 'import'}\n  signing_key: {key}\n", encoding="utf-8"
    )
    monkeypatch.setenv("ARCHIVE_KEY", "k" * 32)
    found, problems = load_connections(conns, {"archive-drop": ArchiveDrop})
    assert not problems
    made = found["archive"].make({"archive-drop": ArchiveDrop})
    made.materials = Store()
    return made


def part() -> PartMessage:
    sha = hashlib.sha256(PDF).hexdigest()
    return PartMessage(
        part_id="P-1",
        application_number="A-1",
        item_code="x",
        item_title="档案",
        department="dag",
        channel="window",
        desk="hall",
        collecting_division="330329",
        deciding_division="330329",
        applicant_type="person",
        applicant_name="林阿婆",
        applicant_id="330329195003150214",
        form={},
        materials=[MaterialRef(name="证明", filename="a.pdf", sha256=sha, media_type="application/pdf", size=len(PDF))],
    )


def test_a_literal_key_is_refused_with_its_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigInvalid, match=r"archive\.yaml:4"):
        connector(tmp_path, monkeypatch, key="plain-text-key")


def test_submit_drops_the_part_with_its_materials_and_poll_reads_the_receipt(tmp_path, monkeypatch):
    c = connector(tmp_path, monkeypatch)
    assert c.check().ok
    receipt = c.submit(part())
    folder = tmp_path / "import" / "P-1"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    dropped = folder / manifest["files"][0]["file"]
    assert hashlib.sha256(dropped.read_bytes()).hexdigest() == manifest["files"][0]["sha256"]
    assert (tmp_path / "import" / "P-1.ok").exists()
    assert c.poll([receipt]) == []  # not filed yet
    (folder / "receipt.json").write_text('{"status": "filed", "note": "已归档"}', encoding="utf-8")
    assert c.poll([Receipt(part_id="P-1", remote_id="P-1")]) == [
        Update(part_id="P-1", remote_id="P-1", status="approved", reason="已归档")
    ]
