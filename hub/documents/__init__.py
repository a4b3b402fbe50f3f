"""Notices and decisions as sealed PDF documents (文书): 收件凭证, 受理通知书, 不予受理通知书,
补正告知书, 容缺受理承诺书, 准予 / 不予决定书, 出件通知书, 送达回证.

Each is owed by the event that makes it (`owe.py`, in the event's own transaction), says what was
true then (a snapshot), is drawn from an ops-editable template (`templates.py`, `render.py`) and
sealed by its authority once, on first request or by `hub run documents` (`issue.py`). Anyone
holding one can check it at `/d/{code}` or with `hub documents verify FILE` (`library.py`)."""

from hub.documents.issue import DocumentUnavailable, issue, issue_pending, pdf_of
from hub.documents.kinds import KINDS, Kind
from hub.documents.library import by_code, documents_of, verify_file
from hub.documents.owe import install, owe_missing

__all__ = [
    "KINDS",
    "DocumentUnavailable",
    "Kind",
    "by_code",
    "documents_of",
    "install",
    "issue",
    "issue_pending",
    "owe_missing",
    "pdf_of",
    "verify_file",
]
