"""Errors the hub raises for bad input. Every one names its field (or file and line), in Chinese
first with English after, and is raised before anything is written."""

from __future__ import annotations

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
