"""File formats of the exchange: a part's file written as JSON, XML or CSV, and a department's
result file read from JSON, XML or CSV — always by building or parsing a structure (json, lxml,
csv), never by pasting a resident's text into markup.

XML is read with a parser that resolves no entities, loads no DTD and goes to no network, and a
document with a DOCTYPE is refused outright: a result file is data, never a reference to other
files (XXE) or a billion-laughs expansion."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from lxml import etree

# lxml comes with zeep (the soap connector's dependency); the SOAP sandbox uses it as well
_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


class FormatError(ValueError):
    """A file that is not what its format says (a message without the file's contents)."""


# ---------------------------------------------------------------------- writing


def dump(body: Any, fmt: str, encoding: str, root: str) -> bytes:
    if fmt == "json":
        return json.dumps(body, ensure_ascii=False, indent=2).encode(encoding)
    if fmt == "xml":
        return _dump_xml(body, root, encoding)
    return _dump_csv(body).encode(encoding)


def _dump_xml(body: Any, root: str, encoding: str) -> bytes:
    element = etree.Element(root)
    _fill(element, body)
    etree.indent(element)
    text = etree.tostring(element, encoding="unicode")
    # the declaration is ours (fixed text); the document is serialised by lxml, then encoded here
    # so that GB18030 does not depend on the iconv of the machine's libxml2
    declaration = f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n'
    return (declaration + text + "\n").encode(encoding)


def _fill(element: etree._Element, value: Any) -> None:
    """A dict becomes child elements (a key `@x` an attribute, `#text` the text), a list repeated
    elements of its key's name, anything else text (true/false for booleans, none: empty)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            key = str(key)
            if key.startswith("@"):
                try:
                    element.set(key[1:], _scalar(item))
                except ValueError:
                    raise _not_a_name(key[1:]) from None
            elif key == "#text":
                element.text = _scalar(item)
            elif isinstance(item, list):
                for each in item:
                    _fill(_child(element, key), each)
            else:
                _fill(_child(element, key), item)
    elif isinstance(value, list):  # a list not under a key: items as <item>
        for each in value:
            _fill(etree.SubElement(element, "item"), each)
    elif value is not None:
        element.text = _scalar(value)


def _child(element: etree._Element, key: str) -> etree._Element:
    try:
        return etree.SubElement(element, key)  # lxml refuses what is not an XML name
    except ValueError:
        raise _not_a_name(key) from None


def _not_a_name(key: str) -> FormatError:
    return FormatError(f"不能作为 XML 名称 (not an XML name): {key[:40]!r}")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _dump_csv(body: Any) -> str:
    """A dict is one row, a list of dicts several; the header is their keys in order of first
    appearance. A nested value goes in its cell as JSON."""
    rows = body if isinstance(body, list) else [body]
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        raise FormatError("csv 的 body 须为一个对象或对象列表 (a csv body is an object or a list of objects)")
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(str(k) for k in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        cells = {str(k): v for k, v in row.items()}
        writer.writerow(_scalar(cells.get(k)) for k in header)
    return out.getvalue()


# ---------------------------------------------------------------------- reading


def load(data: bytes, fmt: str, encoding: str) -> Any:
    """The record a result file holds: JSON as it is; XML as the root element's content; CSV as
    its one record row keyed by the header."""
    if fmt == "xml":
        return _load_xml(data, encoding)
    text = _decode(data, encoding)
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"不是有效的 JSON (invalid JSON at line {exc.lineno})") from None
    return _load_csv(text)


def _decode(data: bytes, encoding: str) -> str:
    try:
        # a UTF-8 file written by Excel starts with a byte order mark: not part of the first header
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError:
        raise FormatError(f"不是 {encoding} 编码 (not {encoding})") from None


def _load_csv(text: str) -> dict[str, str]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FormatError(f"不是有效的 CSV (invalid CSV: {exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) != 2:
        # one part, one record: more rows would leave us guessing which one is the decision
        raise FormatError(
            f"CSV 结果须为表头加一行记录，实有 {max(len(rows) - 1, 0)} 行 "
            f"(a csv result is a header and one record; found {max(len(rows) - 1, 0)} records)"
        )
    header, record = rows
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or len(record) > len(header):
        raise FormatError("CSV 表头重复或记录列数多于表头 (duplicate headers, or more cells than headers)")
    return {h: (record[i].strip() if i < len(record) else "") for i, h in enumerate(header)}


def _load_xml(data: bytes, encoding: str) -> Any:
    # a document's own declaration names its encoding; one without is in the connection's (XML
    # would otherwise assume UTF-8)
    declared = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml")
    parser = etree.XMLParser(**_PARSER_OPTIONS, encoding=None if declared else encoding)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FormatError(f"不是有效的 XML (invalid XML: {str(exc)[:120]})") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise FormatError("XML 结果不得含 DOCTYPE (a DOCTYPE is not accepted in a result)")
    return _xml_value(root)


def _xml_value(element: etree._Element) -> Any:
    """An element as data: its text when it has neither children nor attributes, else a dict of
    `@attribute`s and children by local name (namespaces dropped; a name repeated becomes a list)
    and its text as `#text`."""
    children = [c for c in element if isinstance(c.tag, str)]
    text = (element.text or "").strip()
    if not children and not element.attrib:
        return text
    out: dict[str, Any] = {f"@{etree.QName(k).localname}": v for k, v in element.attrib.items()}
    for child in children:
        key, value = etree.QName(child).localname, _xml_value(child)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    if text:
        out["#text"] = text
    return out
