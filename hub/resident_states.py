"""What an application's state means to the resident who applied, in plain words: the one mapping
the status page (and any message to residents) uses. Staff words such as 出件, 初审 or 补正 are
jargon to a resident; here each state says where the case is and what, if anything, they must do.

The label depends on more than the state: an issued result is "可领取" at the counter but "已寄出"
when it was posted (the form's 领取方式), and a decided case reads differently approved or denied."""

from __future__ import annotations

from dataclasses import dataclass

from hub.lifecycle import State

POSTED = "邮寄送达"  # the 领取方式 (form field `delivery_method`) that sends the result by post


@dataclass(frozen=True)
class ResidentState:
    zh: str
    en: str
    next_zh: str  # what happens next, or what the resident must do
    next_en: str
    tone: str  # wait | act | done | stop: how the page marks it (colour and icon)


_WAIT = {
    State.draft: ResidentState(
        "已登记，尚未提交",
        "Registered, not yet submitted",
        "窗口工作人员正在为您登记。",
        "The desk is registering it.",
        "wait",
    ),
    State.received: ResidentState(
        "已收到您的申请",
        "Application received",
        "窗口正在核对您的材料，无需您操作。",
        "The desk is checking your papers; nothing to do.",
        "wait",
    ),
    State.pre_reviewed: ResidentState(
        "材料已核对，等待审批部门受理",
        "Papers checked, waiting for the department",
        "审批部门将尽快受理，无需您操作。",
        "The department will take it up soon; nothing to do.",
        "wait",
    ),
    State.accepted: ResidentState(
        "已受理，正在办理",
        "Accepted, in progress",
        "请等待办理结果，我们会按承诺时间办结。",
        "Please wait for the result; it will be done by the promised date.",
        "wait",
    ),
    State.in_review: ResidentState(
        "正在审核",
        "Being reviewed",
        "请等待办理结果，我们会按承诺时间办结。",
        "Please wait for the result; it will be done by the promised date.",
        "wait",
    ),
    State.supplement_requested: ResidentState(
        "需要补充材料",
        "More papers needed",
        "请按下面的说明补充材料。补充期间办理时限暂停计算。",
        "Please bring what is listed below. The time limit is paused meanwhile.",
        "act",
    ),
    State.rejected: ResidentState(
        "未予受理",
        "Not accepted",
        "申请未被受理，原因请咨询办理窗口。",
        "The application was not accepted; ask the desk why.",
        "stop",
    ),
    State.withdrawn: ResidentState(
        "已撤回", "Withdrawn", "申请已撤回，不再办理。", "The application was withdrawn.", "stop"
    ),
    State.delivered: ResidentState(
        "已办结，结果已送达", "Done, result handed over", "办理已全部完成。", "Everything is done.", "done"
    ),
}
_DECIDED = {
    "approved": ResidentState(
        "已办结，正在准备结果",
        "Approved, result being prepared",
        "结果准备好后可领取或寄出。",
        "It can be collected or posted once ready.",
        "done",
    ),
    "partial": ResidentState(
        "已办结，部分事项获批",
        "Decided, partly approved",
        "具体结果请咨询办理窗口。",
        "Ask the desk for the details.",
        "done",
    ),
    "denied": ResidentState(
        "已办结，未获批准", "Decided, not approved", "具体原因请咨询办理窗口。", "Ask the desk why.", "stop"
    ),
}
_READY = ResidentState(
    "已办结，可领取",
    "Done, ready to collect",
    "请带上身份证到办理窗口领取。",
    "Please bring your ID card to the desk to collect it.",
    "act",
)
_POSTED = ResidentState(
    "已办结，已寄出", "Done, posted to you", "结果已寄出，请留意查收。", "The result is in the post.", "done"
)
_UNKNOWN = ResidentState("办理中", "In progress", "请等待办理结果。", "Please wait for the result.", "wait")


def resident_state(state: str, outcome: str | None = None, delivery_method: str | None = None) -> ResidentState:
    """The words for a resident: `outcome` (approved / partial / denied) of a decided case and the
    form's `delivery_method` (领取方式) choose among the words for decided and issued."""
    if state == State.issued:
        return _POSTED if delivery_method == POSTED else _READY
    if state == State.decided:
        return _DECIDED.get(outcome or "approved", _DECIDED["approved"])
    return _WAIT.get(state, _UNKNOWN)  # type: ignore[call-overload]


# Every label a resident may see, for the tests and for anyone writing messages to residents
ALL = (*_WAIT.values(), *_DECIDED.values(), _READY, _POSTED)


# The steps of a case a resident's timeline shows (not every internal step, nor who did it), in
# the same plain words; other events (dispatches, warnings, notes) stay on the staff's page.
MILESTONE: dict[str, tuple[str, str]] = {
    "submit": ("提交申请", "Application submitted"),
    "pre_review": ("窗口核对材料", "Papers checked at the desk"),
    "accept": ("审批部门受理", "Accepted by the department"),
    "reject": ("未予受理", "Not accepted"),
    "request_supplement": ("通知补充材料", "More papers requested"),
    "resume": ("材料已补齐，继续办理", "Papers complete, work resumed"),
    "decide": ("办理完成", "Decided"),
    "issue": ("结果可领取或已寄出", "Result ready or posted"),
    "deliver": ("结果已送达", "Result handed over"),
    "withdraw": ("申请已撤回", "Withdrawn"),
}
