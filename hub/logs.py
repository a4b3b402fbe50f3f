"""Logging: one stderr handler for the whole process, as text (people at a terminal, the default)
or as one JSON object per line (production: `HUB_LOG_FORMAT=json`), with the request or job a
line belongs to, every resident ID number masked and every secret query parameter redacted.

- `request_id` is set by the web app for each request (an incoming `X-Request-ID` if it is
  sane, else a fresh one; returned in the response header); `job_id` is set around each recorded
  job run (`hub.ops.recorded_run`: "<job>:<job_runs id>"). Both are context variables, so they
  follow a request into the worker threads it hands work to.
- `MaskIdNumbers` renders each record's message with its arguments and masks every 18-character
  resident ID number in it (and in string extras and exception text) the way lists show them
  (`hub.ids.mask_id`: 3303**********0214). It runs on the handler, so it sees records of every
  logger, the web server's access log included. The same pass replaces the value of secret
  query parameters (the status link's `k=`, `token=`, `password=`, …) with `[redacted]`.

JSON fields: ts (UTC, ISO 8601), level, logger, msg, request_id, job_id (when set), exc (a
formatted exception), the access log's client/method/path/status, and any `extra={…}` given."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from hub.ids import mask_id

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id: ContextVar[str | None] = ContextVar("hub_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("hub_job_id", default=None)

# 17 digits and a digit or X, not inside a longer run of letters and digits (bank card numbers are
# longer; application numbers have dashes). A wrong check digit is masked too: still someone's number.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")

# attributes every LogRecord has: anything else on a record came from `extra={…}`
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
_OURS = {"request_id", "job_id", "_hub_masked", "color_message"}  # uvicorn's ANSI-coloured copy of msg


# query parameters that carry a secret: the applicant's status key (/s/NUMBER?k=…) and anything
# named like a credential. A URL in any log line (uvicorn's access log above all) keeps the name
# and loses the value.
SECRET_PARAM = re.compile(
    r"(?<=[?&;])((?:k|[\w.-]*(?:key|token|secret|password|passwd|ticket|otp|sig|signature))=)[^&;\s\"'#]*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
# a signed material pull link is a credential in the path (hub.outgoing_materials)
SECRET_PATH = re.compile(r"(/materials/)[A-Za-z0-9_-]+\.[0-9a-f]{32}")


def redact_query_secrets(text: str) -> str:
    """`text` with the value of every secret query parameter (k=, token=, …) replaced, and the
    token of a material pull link."""
    return SECRET_PATH.sub(lambda m: m.group(1) + REDACTED, SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text))


def mask_text(text: str) -> str:
    """`text` with every resident ID number in it masked and every secret query value redacted."""
    return redact_query_secrets(ID_NUMBER.sub(lambda m: mask_id(m.group(0)), text))


def sane_request_id(value: str | None) -> str | None:
    """An incoming X-Request-ID worth keeping (short, printable, no spaces), else None."""
    return value if value and _REQUEST_ID.match(value) else None


def new_request_id() -> str:
    return secrets.token_hex(8)


@contextmanager
def job_context(value: str) -> Iterator[None]:
    """Log lines inside carry `job_id`."""
    token = job_id.set(value)
    try:
        yield
    finally:
        job_id.reset(token)


class ContextFilter(logging.Filter):
    """Adds `request_id` and `job_id` to every record (None outside a request or job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "job_id"):
            record.job_id = job_id.get()
        return True


class MaskIdNumbers(logging.Filter):
    """Masks resident ID numbers in the message with its arguments, in string extras and in the
    exception text. The record's arguments are rendered into its message first (once): an ID
    number may arrive in any argument, or inside a dict or list given as one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hub_masked", False):
            return True
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's '%s - "%s %s HTTP/%s" %d': keep the parts as fields for JSON lines
            client, method, path, http_version, status = record.args
            record.client, record.method, record.path = client, method, mask_text(str(path))
            record.http_version, record.status = http_version, status
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log it as given rather than lose the line
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask_text(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask_text(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        record._hub_masked = True
        return True


class TextFormatter(logging.Formatter):
    """The usual one-line text, with the request or job appended when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = mask_text(super().format(record))
        tags = [f"{k}={v}" for k in ("request_id", "job_id") if (v := getattr(record, k, None))]
        if not tags:
            return line
        first, newline, rest = line.partition("\n")
        return mask_text(f"{first} [{' '.join(tags)}]{newline}{rest}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (non-ASCII kept as is, so Chinese messages stay readable)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value is None:
                value = (request_id if key == "request_id" else job_id).get()
            if value is not None:
                out[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _OURS and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(self.formatException(record.exc_info))
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        # extras may hold ID numbers inside dicts and lists: the filter only sees strings
        return mask_text(json.dumps(out, ensure_ascii=False, default=str))


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: text or json")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    handler.addFilter(MaskIdNumbers())
    handler._hub = True  # type: ignore[attr-defined]
    return handler


def configure(level: int | str, fmt: str = "text", stream: IO[str] | None = None, *, force: bool = False) -> None:
    """Log to stderr from `level` in `fmt`. Like `logging.basicConfig`, leaves a root logger that
    something else has configured (a test runner, Airflow) alone unless `force`; a handler of
    ours from an earlier call is replaced."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_hub", False)]
    if len(ours) < len(root.handlers) and not force:
        return
    for h in ours:
        root.removeHandler(h)
    root.addHandler(make_handler(fmt, stream))
    root.setLevel(level)
    # httpx logs every request's full URL at INFO — a department's API key may ride in its query
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def uvicorn_log_config(level: int | str, fmt: str) -> dict[str, Any]:
    """`log_config` for uvicorn: its error and access logs, and the app's own (the root logger, in
    every worker process), through the same formatter and filters as the rest of the hub."""
    name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hub": {"()": "hub.logs.JsonFormatter" if fmt == "json" else "hub.logs.TextFormatter"}},
        "filters": {"context": {"()": "hub.logs.ContextFilter"}, "mask": {"()": "hub.logs.MaskIdNumbers"}},
        "handlers": {
            "hub": {
                "class": "logging.StreamHandler",
                "formatter": "hub",
                "filters": ["context", "mask"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["hub"], "level": name, "propagate": False},
            "uvicorn.error": {"level": name},
            "uvicorn.access": {"handlers": ["hub"], "level": name, "propagate": False},
        },
        "root": {"handlers": ["hub"], "level": name},
    }
