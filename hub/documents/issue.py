"""Issuing: a pending document rendered from its snapshot and template, sealed by its
authority (hub.seals), stored as a blob, and marked issued — once. Two processes issuing the
same document at once both render; the first to mark it wins and the other's file is dropped,
so an issued PDF never changes."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import exists, select

from hub import crypto, secret_key
from hub.documents.kinds import KINDS
from hub.documents.owe import owe_missing
from hub.documents.render import draw
from hub.documents.templates import template_for
from hub.errors import HubError
from hub.pdf import FontMissing
from hub.seals import SealMissing, seal_pdf
from hub.storage.tables import Application, Blob, Document, Event

if TYPE_CHECKING:
    from hub.context import Hub

log = logging.getLogger(__name__)


def verify_url(hub: Hub, code: str) -> str:
    return f"{hub.settings.issued_link_base}/d/{code}"


def render_unsigned(hub: Hub, doc: Document, number: str):
    """The document's page before sealing (hub.documents.render.Page)."""
    snap = doc.data
    item = snap["items"][0]["code"] if KINDS[doc.kind].per_part and snap.get("items") else snap["subject"]["code"]
    filled = template_for(hub.settings.config_dir, doc.kind, item).render(snap | {"code": doc.code})
    status = hub.settings.issued_link_base + secret_key.status_path(secret_key.load(hub.settings), number)
    return draw(filled, snap, doc.code, status, verify_url(hub, doc.code))


class DocumentUnavailable(HubError):
    """A document that cannot be issued now: no seal for its authority, a broken template, no
    CJK font. Ops see why (`hub run documents`, `hub doctor`); residents see that it is not ready."""


def issue(hub: Hub, document_id: int) -> Document:
    """The document, issued (rendered and sealed now if it was pending); DocumentUnavailable
    when it cannot be."""
    try:
        return _issue(hub, document_id)
    except DocumentUnavailable:
        raise
    except (SealMissing, FontMissing, HubError) as exc:  # HubError: a broken template, the store refusing
        raise DocumentUnavailable(f"文书暂不能签发 (document cannot be issued): {exc}") from exc


def _issue(hub: Hub, document_id: int) -> Document:
    with hub.sessions() as session:
        doc = session.get(Document, document_id)
        if doc is None:
            raise HubError(f"no document {document_id}")
        if doc.state == "issued":
            return doc
        number = session.scalar(select(Application.number).where(Application.id == doc.application_id))
        page = render_unsigned(hub, doc, number)
        title = doc.data.get("title") or KINDS[doc.kind].title
    sealed = seal_pdf(hub, page.pdf, doc.authority, page=page.page, box=page.box, reason=title)
    stored = hub.store.put(sealed)  # addressed by SHA-256, as every file in the store
    algorithm = hub.settings.crypto.hash  # 密评: the file's digest also in the configured algorithm
    digest = stored.sha256 if algorithm == "sha256" else crypto.hexdigest(algorithm, sealed)
    now = hub.now()
    with hub.transaction() as session:
        row = session.scalars(select(Document).where(Document.id == document_id).with_for_update()).one()
        if row.state != "issued":  # else another process issued it first: theirs stands
            if session.get(Blob, stored.sha256) is None:  # a blob row, as for materials
                session.add(
                    Blob(
                        sha256=stored.sha256,
                        size=stored.size,
                        media_type=stored.media_type,
                        created_at=now.replace(tzinfo=None),
                    )
                )
            row.sha256, row.state, row.issued_at = stored.sha256, "issued", now.replace(tzinfo=None)
            row.digest_algorithm, row.digest = algorithm, digest
        session.flush()
        session.expunge(row)
    return row


def pdf_of(hub: Hub, doc: Document) -> bytes:
    """The sealed PDF's bytes (issued now if still pending), checked against its digest."""
    if doc.state != "issued":
        doc = issue(hub, doc.id)
    data = hub.store.path_of(doc.sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != doc.sha256:
        raise HubError(f"文书 {doc.code} 的文件已损坏 (stored file does not match its digest)")
    return data


@dataclass
class IssueSummary:
    owed: int = 0
    issued: int = 0
    failed: list[str] = field(default_factory=list)


def issue_pending(hub: Hub, *, limit: int = 500, since_days: int = 30) -> IssueSummary:
    """The job (`hub run documents`): owe what recent events owe and nobody listed yet (the
    plain-row paths), then issue up to `limit` pending documents. One failure (a missing seal,
    a broken template) is reported and stops only that document."""
    summary = IssueSummary()
    since = (hub.now() - timedelta(days=since_days)).replace(tzinfo=None)
    with hub.transaction() as session:
        # applications received as plain rows (first review at the desk, batch intake) whose
        # 收件凭证 nobody has owed yet; every other event is written through the ORM, whose hook
        # owed its documents in its transaction. Owing the receipt owes the rest of the case too.
        owed_by_event = (
            select(Event.application_id)
            .join(Application, Application.id == Event.application_id)
            .where(Event.action == "submit", Event.at >= since, Application.origin_partner.is_(None))
            .where(
                ~exists().where(
                    Document.application_id == Event.application_id,
                    Document.event_seq == Event.seq,
                    Document.kind == "receipt",
                )
            )
            .limit(limit)
        )
        for app_id in session.scalars(owed_by_event).all():
            app = session.get(Application, app_id, with_for_update=True)  # as hub.documents.library
            if app is not None:
                summary.owed += len(owe_missing(hub, session, app))
    with hub.sessions() as session:
        ids = session.scalars(
            select(Document.id).where(Document.state == "pending").order_by(Document.id).limit(limit)
        ).all()
    for doc_id in ids:
        try:
            issue(hub, doc_id)
            summary.issued += 1
        except Exception as exc:  # reported per document; the others go on
            log.warning("document %s not issued: %s", doc_id, exc)
            summary.failed.append(f"{doc_id}: {exc}")
    return summary
