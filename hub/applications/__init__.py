"""Applications (办件): create, move through the life cycle, attach materials, read — every write
validated in full first (nothing is written on bad input) and recorded as a chained event.

Every read and write takes an `Actor` and is scoped: a desk sees its own applications, a
department its own parts; anything else is "not found", never data.

This package's public API, re-exported from the modules that hold it (no logic here):
models (what comes in), scope (reading), create (receiving), batch (a batch's records),
transitions (the life cycle), materials (files, 容缺), events (the chain), numbers (受理编号)."""

from hub.applications.batch import Received, receive_batch, received_refs
from hub.applications.create import check_new, create, receive, replayed, replayed_ref
from hub.applications.events import record_event
from hub.applications.materials import (
    ATTACH_ROLES,
    attach,
    attach_licences,
    attach_result,
    check_complete,
    commitment_limit,
    verified_materials,
)
from hub.applications.models import (
    SYSTEM,
    Actor,
    Agent,
    Applicant,
    FirstReview,
    LicenceRef,
    MaterialIn,
    NewApplication,
)
from hub.applications.scope import get, list_applications, may_reveal_ids, outcome_of, read, scoped
from hub.applications.supplement import SupplementAsk, Wanted, correct_fields, supplement_request
from hub.applications.transitions import LEAD_ACTIONS, MAX_REASON, transition
from hub.storage.tables import Application  # what every read returns: callers name it as svc.Application

__all__ = [
    "ATTACH_ROLES",
    "LEAD_ACTIONS",
    "MAX_REASON",
    "SYSTEM",
    "Actor",
    "Agent",
    "Applicant",
    "Application",
    "FirstReview",
    "LicenceRef",
    "MaterialIn",
    "NewApplication",
    "Received",
    "SupplementAsk",
    "Wanted",
    "attach",
    "attach_licences",
    "attach_result",
    "check_complete",
    "check_new",
    "commitment_limit",
    "correct_fields",
    "create",
    "get",
    "list_applications",
    "may_reveal_ids",
    "outcome_of",
    "read",
    "receive",
    "receive_batch",
    "received_refs",
    "record_event",
    "replayed",
    "replayed_ref",
    "scoped",
    "supplement_request",
    "transition",
    "verified_materials",
]
