"""The kinds of document and the events that owe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    code: str
    title: str  # the default title; a template may say more (准予行政许可决定书)
    per_part: bool = False  # one per part decided (决定书), else one per application
    by_hub: bool = False  # sealed by the hub (the desk's papers before acceptance), else by a department


KINDS: dict[str, Kind] = {
    k.code: k
    for k in [
        Kind("receipt", "收件凭证", by_hub=True),
        Kind("commitment", "容缺受理承诺书"),
        Kind("acceptance", "受理通知书"),
        Kind("rejection", "不予受理通知书"),
        Kind("supplement", "补正告知书"),
        Kind("approval", "准予决定书", per_part=True),
        Kind("denial", "不予决定书", per_part=True),
        Kind("collection", "出件通知书"),
        Kind("delivery", "送达回证"),
    ]
}

# event action → the kind it owes (容缺 below: it depends on the event's data)
BY_ACTION = {
    "submit": "receipt",
    "accept": "acceptance",
    "reject": "rejection",
    "request_supplement": "supplement",
    "approve": "approval",
    "deny": "denial",
    "issue": "collection",
    "deliver": "delivery",
}
ACTIONS = frozenset(BY_ACTION) | {"pre_review"}


def owed_by(action: str, data: dict[str, Any] | None, has_commitment: bool) -> list[str]:
    """The kinds an event owes. 容缺受理承诺书: when the desk records the applicant's promise at
    first review (before acceptance), or — if none was made then — when the department accepts
    with materials owed."""
    data = data or {}
    kinds = [BY_ACTION[action]] if action in BY_ACTION else []
    if action == "pre_review" and data.get("commitment_due"):
        kinds.append("commitment")
    if action == "accept" and data.get("tolerant") and not has_commitment:
        kinds.append("commitment")
    return kinds
