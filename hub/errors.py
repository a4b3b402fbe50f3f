"""Errors the hub raises for bad input. Every one names its field (or file and line), in Chinese
first with English after, and is raised before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} ({self.en})"


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: Reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "zh": self.reason.zh, "en": self.reason.en}

    @classmethod
    def of(cls, field: str, zh: str, en: str) -> FieldError:
        return cls(field, Reason(zh, en))


class HubError(Exception):
    """Base for errors a user can act on; the message is safe to show."""


class InvalidInput(HubError):
    """One or more fields are wrong; nothing was written."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    @classmethod
    def field(cls, field: str, zh: str, en: str) -> InvalidInput:
        """One field is wrong: `raise InvalidInput.field("start", "日期格式应为…", "date as …")`."""
        return cls([FieldError.of(field, zh, en)])


class NotFound(HubError):
    pass


class IllegalTransition(HubError):
    pass


class Forbidden(HubError):
    pass


@dataclass(frozen=True)
class ConfigProblem:
    """A problem in a configuration file, at a line (1-based)."""

    file: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        tag = "warning: " if self.warning else ""
        return f"{self.file}:{self.line}: {tag}{self.message}"


class ConfigInvalid(HubError):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_TAIL = re.compile(r"^(?P<zh>.*[\u3400-\u9fff].*?)\s*[(（](?P<en>[\x20-\x7e]+)[)）]\s*$", re.S)


def in_language(message: str, lang: str) -> str:
    """One language of a "中文 (English)" message, the convention of every error the hub raises:
    a Chinese page shows the Chinese, ?lang=en the English. A message without the convention (a
    path, a department's own words) is shown as it is."""
    m = _TAIL.match(message)
    if not m:
        return message
    return m["en"] if lang == "en" else m["zh"]


# The names of the fields errors point at, for a Chinese page (the API and the CLI show the path).
FIELD_ZH = {
    "desk": "窗口",
    "reason": "理由",
    "subject": "事项",
    "materials": "材料",
    "material": "材料",
    "username": "用户名",
    "password": "密码",
    "display_name": "姓名",
    "role": "角色",
    "department": "部门",
    "start": "开始日期",
    "end": "结束日期",
    "level": "评价",
    "rating": "评价",
    "comment": "意见",
    "response": "回复",
    "commitment_due": "承诺补交日期",
    "action": "操作",
    "part": "事项部分",
    "applicant": "申请人",
    "agent": "代办人",
    "type": "类型",
    "name": "名称",
    "id": "证件号码",
    "id_number": "证件号码",
    "form": "表单",
    "files": "文件",
    "file": "文件",
    "sha256": "文件摘要",
    "verified": "核验结果",
    "licences": "电子证照",
    "checklist": "初审清单",
    "fields": "字段",
    "code": "编码",
    "days": "天数",
    "scopes": "权限范围",
    "approver": "审批人",
    "signature": "签名",
    "body": "内容",
    # 帮代办 and the project ledger (hub.agency)
    "resident_name": "申请人姓名",
    "resident_id": "申请人身份证号",
    "phone": "联系电话",
    "township": "乡镇",
    "address": "地址",
    "preferred_time": "希望时间",
    "note": "备注",
    "visit_place": "上门地点",
    "visit_outcome": "上门结果",
    "visited_at": "上门时间",
    "filename": "文件名",
    "consent": "委托书",
    "resident_signature": "委托人签名",
    "agent_signature": "代办员签名",
    "company_name": "项目单位",
    "credit_code": "统一社会信用代码",
    "investment_wan": "总投资",
    "application_number": "办件号",
    "milestone_due": "计划完成日期",
    "done_date": "完成日期",
}
_SEGMENT = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def field_name(path: str, lang: str) -> str:
    """ "materials[1].name" → "材料第2项 · 名称" on a Chinese page; the path itself in English. A
    segment with no Chinese name (a form field's own name) stays as it is."""
    if lang == "en" or not path:
        return path
    words = []
    for seg in path.split("."):
        m = _SEGMENT.fullmatch(seg.strip())
        if not m:
            words.append(seg)
            continue
        word = FIELD_ZH.get(m[1], m[1])
        words.append(f"{word}第{int(m[2]) + 1}项" if m[2] is not None else word)
    return " · ".join(words)
