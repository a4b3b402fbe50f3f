"""The file formats of the sftp connector on their own (plugins/sftp/formats.py): what a
department's file becomes, and what the hub's becomes on the department's side. The transport
is tested against OpenSSH in test_sftp.py and test_sftp_declarative.py."""

from __future__ import annotations

import csv
import io

import pytest
from lxml import etree

from plugins.sftp import formats
from plugins.sftp.formats import FormatError


def test_xml_is_built_as_a_tree_and_read_back():
    body = {
        "@version": 2,
        "CaseNo": "p-1",
        "Name": "叶䶮<&\"'>",  # markup in a resident's name stays text
        "Flags": {"Urgent": True, "Note": None},
        "Attachment": [{"@file": "a.pdf"}, {"@file": "b.pdf"}],
    }
    data = formats.dump(body, "xml", "gb18030", "Case")
    assert data.startswith(b'<?xml version="1.0" encoding="GB18030"?>\n')
    root = etree.fromstring(data)
    assert root.findtext("Name") == "叶䶮<&\"'>" and root.get("version") == "2"
    assert [a.get("file") for a in root.findall("Attachment")] == ["a.pdf", "b.pdf"]
    assert formats.load(data, "xml", "gb18030") == {
        "@version": "2",
        "CaseNo": "p-1",
        "Name": "叶䶮<&\"'>",
        "Flags": {"Urgent": "true", "Note": ""},
        "Attachment": [{"@file": "a.pdf"}, {"@file": "b.pdf"}],
    }
    for bad in ("1st", "a b", "x:y", ""):
        with pytest.raises(FormatError, match="not an XML name"):
            formats.dump({bad: 1}, "xml", "utf-8", "Case")


def test_xml_results_in_the_connections_encoding_unless_declared():
    assert formats.load("<R><S>已办结</S></R>".encode("gb18030"), "xml", "gb18030") == {"S": "已办结"}
    declared = '<?xml version="1.0" encoding="UTF-8"?><R><S>已办结</S></R>'.encode()
    assert formats.load(declared, "xml", "gb18030") == {"S": "已办结"}
    namespaced = b'<r:R xmlns:r="urn:x" r:id="7"><r:S>ok</r:S><!-- note --></r:R>'
    assert formats.load(namespaced, "xml", "utf-8") == {"@id": "7", "S": "ok"}


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE r [<!ENTITY a "x">]><r>&a;</r>',
        b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "http://127.0.0.1:9/">]><r>&e;</r>',
        b"<r><unclosed></r>",
    ],
)
def test_xml_results_with_a_dtd_or_broken_are_refused(document):
    with pytest.raises(FormatError):
        formats.load(document, "xml", "utf-8")


def test_csv_rows_and_one_record_results():
    data = formats.dump([{"材料": "身份证", "大小": 3}, {"材料": "户口簿", "备注": {"页": 2}}], "csv", "gb18030", "x")
    rows = list(csv.reader(io.StringIO(data.decode("gb18030"), newline="")))
    assert rows == [["材料", "大小", "备注"], ["身份证", "3", ""], ["户口簿", "", '{"页":2}']]
    with pytest.raises(FormatError, match="object"):
        formats.dump("text", "csv", "utf-8", "x")

    bom = "\ufeff状态,原因\r\n已办结,\r\n".encode()  # Excel's UTF-8
    assert formats.load(bom, "csv", "utf-8") == {"状态": "已办结", "原因": ""}
    assert formats.load('状态,原因\n退回补正,"缺,页"\n\n'.encode("gb18030"), "csv", "gb18030") == {
        "状态": "退回补正",
        "原因": "缺,页",
    }
    for bad, message in [
        ("状态\r\n".encode(), "found 0 records"),
        ("状态\r\n甲\r\n乙\r\n".encode(), "found 2 records"),
        ("状态,状态\r\n甲,乙\r\n".encode(), "duplicate"),
        ("状态\r\n甲,多余\r\n".encode(), "more cells"),
        ("状态\r\n已办结\r\n".encode("gb18030"), "not utf-8"),
    ]:
        with pytest.raises(FormatError, match=message):
            formats.load(bad, "csv", "utf-8")


def test_json_both_ways():
    data = formats.dump({"名": "叶䶮"}, "json", "gb18030", "x")
    assert formats.load(data, "json", "gb18030") == {"名": "叶䶮"}
    with pytest.raises(FormatError, match="invalid JSON at line 2"):
        formats.load(b"{\n,}", "json", "utf-8")
