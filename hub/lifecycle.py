"""The application life cycle (办件流程) as data: states, actions, and who may take each action.

    draft → received → pre_reviewed → accepted → in_review → decided → issued → delivered
                 │            │           │           │
                 ├────────────┴─► rejected (不予受理)  └─ parts: pending → in_review → approved | denied
                 └─► supplement_requested (补正, clock stopped) ─► back where it came from
    any open state ─► withdrawn

Application-level actions move the application; part-level actions (start_review, approve, deny)
move one part, and the application follows: in_review when the first part is under review,
decided when every part is approved or denied (outcome: approved, denied or partial)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    draft = "draft"
    received = "received"  # 收件
    pre_reviewed = "pre_reviewed"  # 初审 (bank outlet / enclave desk)
    accepted = "accepted"  # 受理
    rejected = "rejected"  # 不予受理
    supplement_requested = "supplement_requested"  # 补正
    in_review = "in_review"  # 审查
    decided = "decided"  # 办结: every part approved or denied
    issued = "issued"  # 出件
    delivered = "delivered"  # 送达
    withdrawn = "withdrawn"  # 撤回


class PartState(StrEnum):
    pending = "pending"
    in_review = "in_review"
    approved = "approved"
    denied = "denied"
    withdrawn = "withdrawn"


class Role(StrEnum):
    applicant = "applicant"
    teller = "teller"  # bank outlet staff
    enclave_clerk = "enclave_clerk"
    clerk = "clerk"  # county hall or township window
    agent = "agent"  # 代办员 (帮代办): collects for a desk at residents' homes, with their 委托书
    officer = "officer"  # county department officer
    supervisor = "supervisor"
    ops = "ops"
    system = "system"  # jobs and machines


STATE_ZH = {
    "draft": "草稿",
    "received": "已收件",
    "pre_reviewed": "已初审",
    "accepted": "已受理",
    "rejected": "不予受理",
    "supplement_requested": "待补正",
    "in_review": "审查中",
    "decided": "已办结",
    "issued": "已出件",
    "delivered": "已送达",
    "withdrawn": "已撤回",
    "pending": "待审查",
    "approved": "准予",
    "denied": "不予",
}

# a part's state as shown beside the whole case's: a part waits (待审查) only once the case is
# accepted; before that it waits for 受理, and a case refused or withdrawn ends its parts too
_PART_BEFORE = {"draft": "待受理", "received": "待受理", "pre_reviewed": "待受理", "rejected": "不予受理"}


def part_state_zh(app_state: str, part_state: str) -> str:
    """A part's state in words that agree with the whole case's (a pending part of a case not yet
    accepted is 待受理, not 待审查; of a refused one, 不予受理; of one in 补正, 待补正). The one
    wording for every page that shows parts (the decision page, the inbox)."""
    if part_state in ("pending", "in_review"):
        if app_state in _PART_BEFORE:
            return _PART_BEFORE[app_state]
        if app_state == "supplement_requested":
            return "待补正"
        if app_state == "withdrawn":
            return "已撤回"
    return STATE_ZH.get(part_state, part_state)


OPEN = frozenset(
    {State.draft, State.received, State.pre_reviewed, State.accepted, State.supplement_requested, State.in_review}
)
# States in which the time limit is being tracked (the clock may stand while 补正).
CLOCKED = frozenset({State.accepted, State.in_review, State.supplement_requested})

FRONT = frozenset({Role.teller, Role.enclave_clerk, Role.clerk})
# 代办员 collect for their home desk (a township centre, the hall, an enclave window) but do not
# first-review (初审 stays with the desk): they receive, attach and follow what they collected
COLLECTORS = FRONT | {Role.agent}
S = State


@dataclass(frozen=True)
class Action:
    name: str
    zh: str
    sources: frozenset[str]
    target: str | None  # None: back to where 补正 came from
    roles: frozenset[Role]
    part_level: bool = False
    needs_reason: bool = False


def _a(name, zh, sources, target, roles, **kw) -> Action:
    # jobs and scripts acting as `system` may take every action
    return Action(name, zh, frozenset(sources), target, frozenset(roles) | {Role.system}, **kw)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        _a("submit", "提交", {S.draft}, S.received, FRONT | {Role.applicant, Role.agent}),
        _a("pre_review", "初审通过", {S.received}, S.pre_reviewed, FRONT),
        _a("accept", "受理", {S.received, S.pre_reviewed}, S.accepted, {Role.officer, Role.clerk}),
        _a(
            "reject",
            "不予受理",
            {S.received, S.pre_reviewed},
            S.rejected,
            {Role.officer, Role.clerk},
            needs_reason=True,
        ),
        _a(
            "request_supplement",
            "要求补正",
            {S.received, S.pre_reviewed, S.accepted, S.in_review},
            S.supplement_requested,
            FRONT | {Role.officer},
            needs_reason=True,
        ),
        _a("resume", "补正完成", {S.supplement_requested}, None, FRONT | {Role.officer, Role.applicant}),
        _a("start_review", "开始审查", {PartState.pending}, PartState.in_review, {Role.officer}, part_level=True),
        _a("approve", "准予", {PartState.in_review}, PartState.approved, {Role.officer}, part_level=True),
        _a("deny", "不予", {PartState.in_review}, PartState.denied, {Role.officer}, part_level=True, needs_reason=True),
        _a("issue", "出件", {S.decided}, S.issued, {Role.officer, Role.clerk}),
        _a("deliver", "送达", {S.issued}, S.delivered, FRONT | {Role.officer}),
        _a("withdraw", "撤回", OPEN, S.withdrawn, FRONT | {Role.applicant, Role.officer}, needs_reason=True),
    ]
}

# The hub records two events itself, as role `system`: `start` (the application follows its first
# part into review) and `decide` (every part is approved or denied).


def outcome(part_states: list[str]) -> str:
    """approved / denied / partial, for a decided application."""
    states = set(part_states)
    if states == {PartState.approved}:
        return "approved"
    if states == {PartState.denied}:
        return "denied"
    return "partial"
