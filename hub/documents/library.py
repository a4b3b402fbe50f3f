"""Finding documents: an application's (scoped to the caller, like its materials), one by its
verification code (the public check), and a file checked against what the hub issued."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hub import crypto
from hub.documents.kinds import KINDS
from hub.documents.owe import normal_code, owe_missing, owed
from hub.ids import mask_name
from hub.seals import verify_pdf
from hub.storage.tables import Application, Document

if TYPE_CHECKING:
    from hub.context import Hub


def documents_of(hub: Hub, app: Application) -> list[Document]:
    """The documents of an application the caller has read (its scope checked: hub.applications.read,
    which loads its events), oldest first. Those its events owe and nobody recorded yet (plain-row
    intake) are owed now — a write only then: pages that list documents stay reads."""
    query = select(Document).where(Document.application_id == app.id).order_by(Document.event_seq, Document.id)
    with hub.sessions() as session:
        docs = list(session.scalars(query))
        session.expunge_all()
    if next(owed(app, {(d.event_seq, d.kind) for d in docs}), None) is None:
        return docs
    with hub.transaction() as session:
        # the application's row locked, as every writer of its events holds it: a transition
        # owing documents in its own transaction commits first, and is seen here
        fresh = session.get(Application, app.id, with_for_update=True)
        owe_missing(hub, session, fresh)
        session.flush()
        docs = list(session.scalars(query))
        session.expunge_all()
    return docs


def recent(hub: Hub, *, state: str | None = None, limit: int = 50) -> list[tuple[Document, str]]:
    """The newest documents of all applications (with their numbers), for ops and scripts."""
    query = select(Document, Application.number).join(Application, Application.id == Document.application_id)
    if state:
        query = query.where(Document.state == state)
    with hub.sessions() as session:
        rows = [(d, n) for d, n in session.execute(query.order_by(Document.id.desc()).limit(limit))]
        session.expunge_all()
    return rows


def by_code(hub: Hub, code: str) -> tuple[Document, str] | None:
    """The document with this verification code and its application's number, or None."""
    normal = normal_code(code)
    if normal is None:
        return None
    with hub.sessions() as session:
        row = session.execute(
            select(Document, Application.number)
            .join(Application, Application.id == Document.application_id)
            .where(Document.code == normal)
        ).first()
        if row is None:
            return None
        session.expunge(row[0])
        return row[0], row[1]


def public_view(doc: Document) -> dict[str, Any]:
    """What the public check shows: the kind, date, authority, masked applicant, digest — no
    more personal data than that."""
    snap = doc.data
    name = snap["applicant"]["name"]
    return {
        "code": doc.code,
        "kind": doc.kind,
        "title": snap.get("title") or KINDS[doc.kind].title,
        "date": snap.get("date"),
        "authority": snap["authority"]["name"],
        "applicant": mask_name(name),
        "state": doc.state,
        "sha256": doc.sha256,
        "digest_algorithm": doc.digest_algorithm,
        "digest": doc.digest,
        "issued_at": doc.issued_at.isoformat() + "Z" if doc.issued_at else None,
    }


def staff_view(doc: Document) -> dict[str, Any]:
    return public_view(doc) | {
        "id": doc.id,
        "part_id": doc.part_id,
        "event_seq": doc.event_seq,
        "authority_code": doc.authority,
        "applicant": doc.data["applicant"]["name"],
    }


@dataclass
class FileCheck:
    sha256: str
    seals: list[Any] = field(default_factory=list)  # hub.seals.SealCheck
    document: Document | None = None  # the issued document with this digest
    number: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.seals) and all(s.ok for s in self.seals) and self.document is not None


def verify_file(hub: Hub, data: bytes) -> FileCheck:
    """A file's seals checked (hub.seals.verify_pdf) and whether the hub issued exactly these bytes."""
    sha = hashlib.sha256(data).hexdigest()
    check = FileCheck(sha256=sha, seals=verify_pdf(hub, data))
    with hub.sessions() as session:
        row = session.execute(
            select(Document, Application.number)
            .join(Application, Application.id == Document.application_id)
            .where(Document.sha256 == sha, Document.state == "issued")
        ).first()
        if row is not None:
            session.expunge(row[0])
            doc = row[0]
            # the digest recorded in its own algorithm (sm3 when 密评 asks) must agree as well
            if doc.digest is None or crypto.hexdigest(doc.digest_algorithm, data) == doc.digest:
                check.document, check.number = doc, row[1]
    return check
