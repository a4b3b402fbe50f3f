"""The one retry policy of a `rest` connection, on tenacity: within one call, a retryable
DeliveryError (timeout, connection failure, 429, 5xx) is tried again up to `retries` more times;
a refusal (other 4xx) is raised at once. Between attempts it waits what the server's Retry-After
says, else 0.2 s doubling each time — never longer than `max_retry_after_seconds`, whatever the
server asks for. (The dispatcher's own backoff, across calls, is hub.connectors.Limits.)"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import tenacity

from hub.connectors import DeliveryError

RETRY_STATUSES = {429, 500, 502, 503, 504}
FIRST_BACKOFF_SECONDS = 0.2  # then doubled per attempt


class HttpError(DeliveryError):
    """An HTTP answer that is a fault, with the wait its Retry-After header asked for (if any)."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None):
        super().__init__(message, retryable=status in RETRY_STATUSES)
        self.status = status
        self.retry_after = retry_after


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait: Retry-After as seconds or as an HTTP date; None when
    absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan", "inf", "-1e999" parse as floats and mean nothing: treated as absent
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a server that omits the zone means it too
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class _WaitRetryAfter(tenacity.wait.wait_base):
    """The server's Retry-After when the last attempt's error carries one, else exponential
    backoff; both capped at `cap` seconds (a server must not park a dispatcher thread)."""

    def __init__(self, cap: float):
        self.cap = cap
        self.fallback = tenacity.wait_exponential(multiplier=FIRST_BACKOFF_SECONDS, exp_base=2, max=cap)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = getattr(outcome.exception(), "retry_after", None) if outcome is not None else None
        return min(asked, self.cap) if asked is not None else self.fallback(retry_state)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.retryable


def policy(retries: int, max_retry_after_seconds: float, deadline: float | None = None) -> tenacity.Retrying:
    """`retries + 1` attempts in all, no wait that would end past `deadline` (time.monotonic()):
    the call's one deadline, shared by a token fetch inside it and by a second round after a 401;
    the last error is raised as it is (not a RetryError)."""
    stop = tenacity.stop_after_attempt(retries + 1)
    if deadline is not None:
        stop = stop | _past(deadline)
    return tenacity.Retrying(
        stop=stop,
        retry=tenacity.retry_if_exception(_retryable),
        wait=_WaitRetryAfter(max_retry_after_seconds),
        reraise=True,
    )


def _past(deadline: float) -> tenacity.stop.stop_base:
    class _Past(tenacity.stop.stop_base):
        def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
            return time.monotonic() + (retry_state.upcoming_sleep or 0) >= deadline

    return _Past()
