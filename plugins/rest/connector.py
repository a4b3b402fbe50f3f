"""`rest` connector: a department system with a JSON HTTP API, described by configuration
(plugins/rest/spec.py; reference and worked example: docs/connect/rest.md).

Every verb is a request rendered from templates (hub.mapping) and an answer read by JMESPath
selectors. Every answer is bounded: its size (max_answer_bytes, after decompression), the time of
one call with its retries (max_call_seconds, whatever the per-read timeouts allow), the pages and
time of one poll (max_pages, a repeated cursor, max_poll_seconds). Only the statuses a mapping
names count as success. TLS verified (plain http only to loopback), redirects never followed,
a credential never sent to another host."""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import ValidationError

from hub import mapping, text
from hub.connectors import (
    BATCH_ID,
    MAX_LICENCES,
    Batch,
    CheckResult,
    Connector,
    DeliveryError,
    Document,
    LicenceRecord,
    PartMessage,
    PollFailure,
    Preview,
    Receipt,
    Update,
    Verification,
    in_turn,
)
from plugins.rest import auth, retry
from plugins.rest.spec import Check, Pagination, Request, RestSpec, Status

log = logging.getLogger(__name__)

_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)
_DECISIONS = ("approved", "denied")


class Unreachable(DeliveryError):
    """No answer at all (connection failed, timed out): the whole system, not one record."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class TooLarge(DeliveryError):
    """An answer over its byte limit (max_answer_bytes, or what is left of a poll's max_poll_bytes)."""

    def __init__(self, name: str, limit: int):
        super().__init__(f"{name}: 应答过大 answer larger than max_answer_bytes ({limit})", retryable=False)
        self.limit = limit


class _Deferred(Exception):
    """A record whose documents did not fit this poll (its time or its byte budget): not returned
    now, polled again at the next sync — nothing lost, nothing recorded as an error."""


@dataclass
class _PollBudget:
    """What one poll may still spend: until `deadline` (max_poll_seconds), `bytes_left` of result
    documents held in memory (max_poll_bytes)."""

    deadline: float
    bytes_left: int


class _CutOff(Exception):
    """A listing stopped by a bound (pages, a repeated cursor, time): its remaining receipts are
    not known to be absent."""


class RestConnector(Connector):
    type = "rest"
    Spec = RestSpec
    description = "JSON over HTTPS, declarative: requests and answer mappings per verb, OAuth2/HMAC/API key/mTLS"

    def __init__(self, name: str, spec: RestSpec):
        super().__init__(name, spec)
        self.spec: RestSpec = spec
        self._root = str(spec.base_url).rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_seconds, connect=spec.connect_timeout_seconds),
            verify=self._tls_context(),
            follow_redirects=False,  # a 3xx is an answer to judge, never a hop to take with our token
        )
        self._local = threading.local()  # the deadline of the call this thread is making
        self._auth = auth.make(spec.auth, self._token_request, lambda: self._where("auth", "oauth2"))

    def _tls_context(self) -> ssl.SSLContext:
        spec = self.spec
        context = ssl.create_default_context(cafile=str(spec.ca_file) if spec.ca_file else None)
        if spec.client_cert:
            context.load_cert_chain(str(spec.client_cert.cert_file), str(spec.client_cert.key_file))
        return context

    def close(self) -> None:
        self._client.close()

    def _where(self, *loc: str | int) -> str:
        """FILE:LINE of a config key — in the shipped profile when the connection took it from there."""
        spec = self.spec
        if loc and spec.from_profile(str(loc[0])):
            dotted = ".".join(str(p) for p in loc)
            return f"plugins/rest/profiles/{spec.profile}.yaml (profile {spec.profile}: config.{dotted})"
        return self.where(*loc)

    # ------------------------------------------------------------------ transport

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self._root + path

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        files: list | None = None,
        data: dict | None = None,
        authenticate: bool = True,
        basic: tuple[str, str] | None = None,
        deadline: float | None = None,
        limit: int | None = None,
    ) -> httpx.Response:
        """One call: retried on 429/5xx/timeouts, a 401 under OAuth2 once more with a fresh token,
        all of it — the token fetch too — within max_call_seconds (or the earlier `deadline` a
        poll gives). An answer ≥ 400 is an HttpError; any other is returned for the caller to judge
        against the statuses its mapping names; an answer over `limit` bytes (max_answer_bytes by
        default) is refused."""
        request = self._client.build_request(
            method, self._url(path), json=json, params=params, headers=headers, content=content, files=files, data=data
        )
        request.read()  # a multipart body in memory: signed by HMAC, sent again by a retry
        if basic:  # RFC 6749 §2.3.1: both form-urlencoded, then Basic
            pair = f"{quote(basic[0], safe='')}:{quote(basic[1], safe='')}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        with self._bounded(deadline) as until:

            def attempt() -> httpx.Response:
                if authenticate:
                    self._auth.apply(request)  # an OAuth2 token fetch inside: the same deadline
                return self._send(request, until, limit)

            try:
                return self._retrying(until)(attempt)
            except retry.HttpError as exc:
                if not (authenticate and exc.status == 401 and self._auth.refused()):
                    raise
            return self._retrying(until)(attempt)

    @contextmanager
    def _bounded(self, deadline: float | None = None) -> Iterator[float]:
        """The deadline of one call: max_call_seconds from now, or earlier when the caller (a
        poll) or an enclosing call says so. A call made inside another (the OAuth2 token fetch
        inside a submit) keeps the outer call's deadline: max_call_seconds bounds the whole."""
        outer = getattr(self._local, "deadline", None)
        until = min(d for d in (time.monotonic() + self.spec.max_call_seconds, deadline, outer) if d is not None)
        self._local.deadline = until
        try:
            yield until
        finally:
            self._local.deadline = outer

    def _retrying(self, deadline: float) -> Any:
        # one per call: a Retrying keeps the state of the call it runs
        return retry.policy(self.spec.retries, self.spec.max_retry_after_seconds, deadline)

    def longest_call(self) -> tuple[float, tuple[str | int, ...]] | None:
        """One submit, worst case: max_call_seconds bounds it all (retries, waits, the OAuth2 token
        fetch, the 401 round). The deadline is checked before each step of an attempt (connect,
        TLS, sending, the answer's headers) and after each chunk read; a step begun just before
        it may take its own timeout more (connect_timeout_seconds or timeout_seconds, each capped
        at what was left of the call when the attempt began)."""
        spec = self.spec
        step = min(max(spec.connect_timeout_seconds, spec.timeout_seconds), spec.max_call_seconds)
        return spec.max_call_seconds + step, ("max_call_seconds",)

    def _send(self, request: httpx.Request, deadline: float, limit: int | None = None) -> httpx.Response:
        """One attempt: the answer when it is not an error, else a DeliveryError saying whether
        trying again can help."""
        self._arm(request, deadline)
        try:
            streamed = self._client.send(request, stream=True)
            try:
                response = self._read(streamed, deadline, limit)
            finally:
                streamed.close()
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.name}: 超时 timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise self._connection_failed(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        return response

    def _arm(self, request: httpx.Request, deadline: float) -> None:
        """The attempt's timeouts, none past the deadline, and a check of the deadline before
        each step httpcore takes (connect, TLS, send, headers): a slow connect followed by a slow
        send cannot add up past max_call_seconds."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._too_slow()
        request.extensions["timeout"] = httpx.Timeout(
            min(self.spec.timeout_seconds, remaining), connect=min(self.spec.connect_timeout_seconds, remaining)
        ).as_dict()

        def step(event: str, _info: dict[str, Any]) -> None:
            # never on closing: a response being closed must close
            if event.endswith(_STEPS) and time.monotonic() > deadline:
                raise self._too_slow()

        request.extensions["trace"] = step

    def _too_slow(self) -> DeliveryError:
        # httpx's read timeout is per chunk: a 1 KiB/s trickle never trips it; this bound is total
        return Unreachable(
            f"{self.name}: 超过 max_call_seconds ({self.spec.max_call_seconds:g} s) 仍未完成 "
            "(call not complete within max_call_seconds: the answer is too slow)"
        )

    def _read(self, streamed: httpx.Response, deadline: float, limit: int | None = None) -> httpx.Response:
        """The answer read in full, but never more than max_answer_bytes (or `limit`) of it
        (decoded: a small gzip body must not unpack into gigabytes) nor past the call's deadline;
        an error's body only as far as its detail needs."""
        if streamed.status_code >= 400:
            limit = ERROR_BODY_BYTES
        elif limit is None:
            limit = self.spec.max_answer_bytes
        body = bytearray()
        for chunk in streamed.iter_bytes():
            body += chunk
            if len(body) > limit:
                if streamed.status_code >= 400:
                    break
                raise TooLarge(self.name, limit)
            if time.monotonic() > deadline:
                raise self._too_slow()
        # the body is decoded already: drop the headers that described it on the wire
        headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
        return httpx.Response(
            streamed.status_code, headers=headers, content=bytes(body[:limit]), request=streamed.request
        )

    def _http_error(self, response: httpx.Response) -> retry.HttpError:
        return retry.HttpError(
            f"{self.name}: HTTP {response.status_code} {_detail(response)}",
            status=response.status_code,
            retry_after=retry.retry_after(response),
        )

    def _connection_failed(self, exc: httpx.TransportError) -> DeliveryError:
        return Unreachable(f"{self.name}: 连接失败 connection failed ({type(exc).__name__})")

    def _token_request(self, url: str, form: dict[str, str], basic: tuple[str, str] | None) -> Any:
        """The OAuth2 token endpoint: the same bounds as every call, and no bearer of its own."""
        try:
            response = self._call("POST", url, data=form, authenticate=False, basic=basic)
        except retry.HttpError as exc:
            # not an HttpError any more: the API call that needed the token must not take this
            # 401 for its own and ask for a token again
            raise DeliveryError(
                f"{self._where('auth', 'oauth2', 'token_url')}: 令牌请求被拒绝 (token request refused): {exc}",
                retryable=exc.retryable,
            ) from None
        self._expect(response, [200], lambda: self._where("auth", "oauth2", "token_url"))
        return self._json(response, lambda: self._where("auth", "oauth2", "token_url"))

    def _expect(self, response: httpx.Response, statuses: list[int], where: mapping.Where) -> None:
        if response.status_code not in statuses:
            location = response.headers.get("Location")
            to = f" → {location[:120]}" if location else ""
            raise DeliveryError(
                f"{_place(where)}: HTTP {response.status_code}{to} 不是成功状态 "
                f"(not one of the success statuses {statuses})",
                retryable=False,
            )

    def _json(self, response: httpx.Response, where: mapping.Where | None = None) -> Any:
        try:
            return response.json()
        except ValueError:
            place = _place(where) if where else self.name
            kind = response.headers.get("Content-Type", "?")[:60]
            raise DeliveryError(
                f"{place}: HTTP {response.status_code} 应答不是JSON (answer is not JSON; Content-Type {kind})",
                retryable=False,
            ) from None

    # ------------------------------------------------------------------ requests from the mapping

    def _render(self, req: Request, context: dict[str, Any], loc: tuple[str, ...]) -> dict[str, Any]:
        def at(*sub: str | int) -> Callable[[], str]:
            return lambda: self._where(*loc, *sub)

        path = mapping.render(req.path, context, at("path"), quote_values=True)
        headers = {k: _header(mapping.render(v, context, at("headers", k))) for k, v in req.headers.items()}
        query = {k: mapping.render(v, context, at("query", k)) for k, v in req.query.items()}
        body = mapping.render(req.body, context, at("body")) if req.body is not None else None
        return {
            "method": req.method,
            "path": str(path),
            "headers": headers,
            "params": {k: v for k, v in query.items() if v is not None},
            "body": body,
        }

    def _perform(self, rendered: dict[str, Any], files: list | None = None, part_field: str = "part") -> httpx.Response:
        body = rendered["body"]
        if files is not None:  # multipart: the body as one JSON field, every material a file field
            payload = json.dumps(body, ensure_ascii=False).encode()
            return self._call(
                rendered["method"],
                rendered["path"],
                params=rendered["params"],
                headers=rendered["headers"],
                files=[(part_field, (None, payload, "application/json")), *files],
            )
        return self._call(
            rendered["method"],
            rendered["path"],
            params=rendered["params"],
            headers=rendered["headers"],
            json=body,
        )

    # ------------------------------------------------------------------ verbs

    def check(self) -> CheckResult:
        """The configured probe, authenticated: a wrong secret fails here, not at the first
        delivery. An intake-only source with no `check` probes its batch listing."""
        probe = self.spec.check or Check(path=self.spec.intake_path)
        try:
            rendered = self._render(probe, {}, ("check",))
            response = self._perform(rendered)
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        if response.status_code not in probe.ok_statuses:
            return CheckResult(
                ok=False,
                message=f"{self._where('check', 'ok_statuses')}: HTTP {response.status_code} "
                f"(not one of {probe.ok_statuses})",
            )
        return CheckResult(ok=True, message=f"{probe.method} {rendered['path']} → HTTP {response.status_code} OK")

    def context(self, part: PartMessage) -> dict[str, Any]:
        """What the templates see for one part (hub.mapping.part_context, form renamed by field_map)."""
        if self.spec.field_map:
            part = part.model_copy(update={"form": {self.spec.field_map.get(k, k): v for k, v in part.form.items()}})
        delivery = self.spec.materials
        plain = delivery.model_copy(update={"mode": "none"}) if delivery.mode == "multipart" else delivery
        return mapping.part_context(part, plain, self.materials, page_size=self.spec.page_size)

    def render(self, part: PartMessage) -> dict[str, Any]:
        """What `submit` would send for `part` — method, URL, headers, query, body — without the
        credentials (added only as a request leaves) and with inline contents shortened: for
        `hub connectors render`."""
        sub = self.spec.submit
        if sub is None:
            raise DeliveryError(
                f"{self._where('submit')}: 未配置 submit (no submit request configured)", retryable=False
            )
        context = self.context(part)
        for m in context["materials"]:
            if "content" in m:
                m["content"] = f"<base64, {m['size']} bytes>"
        rendered = self._render(sub, context, ("submit",))
        rendered["url"] = self._url(rendered.pop("path"))
        if self.spec.materials.mode == "multipart":
            rendered["files"] = [f"{sub.multipart.file_field}: {m.filename} ({m.size} bytes)" for m in part.materials]
        return rendered

    def preview(self, part: PartMessage) -> list[Preview]:
        """The submission as it would leave: the request built as `submit` builds it, the
        credentials shown where they go with their values masked."""
        shown = self.render(part)
        multipart = "files" in shown
        request = self._client.build_request(
            shown["method"],
            shown["url"],
            params=shown["params"],
            headers=shown["headers"],
            json=None if multipart else shown["body"],
        )
        self._auth.shown(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _PREVIEW_HIDDEN}
        return [
            Preview(
                summary=f"{request.method} {request.url}" + (" (multipart/form-data)" if multipart else ""),
                headers=headers,
                body=json.dumps(shown["body"], ensure_ascii=False, indent=2) if shown["body"] is not None else "",
                attachments=shown.get("files", []),
            )
        ]

    def submit(self, part: PartMessage) -> Receipt:
        sub = self.spec.submit
        if sub is None:
            raise DeliveryError(
                f"{self._where('submit')}: 未配置 submit (no submit request configured)", retryable=False
            )
        rendered = self._render(sub, self.context(part), ("submit",))
        files = None
        if self.spec.materials.mode == "multipart":
            files = [
                (sub.multipart.file_field, (ref.filename, self.materials.read(ref), ref.media_type))
                for ref in part.materials
            ]
        response = self._perform(rendered, files, sub.multipart.part_field)
        self._expect(response, sub.success_statuses, lambda: self._where("submit", "success_statuses"))
        data = self._json(response, lambda: self._where("submit"))
        remote_id = mapping.search(sub.remote_id, data, lambda: self._where("submit", "remote_id"), required=True)
        if isinstance(remote_id, (dict, list, bool)):
            raise mapping.MappingError(
                f"{self._where('submit', 'remote_id')}: {sub.remote_id!r} 不是一个编号 (not an id: {_shown(remote_id)})"
            )
        receipt = Receipt(part_id=part.part_id, remote_id=str(remote_id))
        if sub.decision:
            raw = mapping.search(sub.decision.status, data, lambda: self._where("submit", "decision", "status"))
            if raw is not None:
                reason = (
                    mapping.search(sub.decision.reason, data, lambda: self._where("submit", "decision", "reason"))
                    if sub.decision.reason
                    else None
                )
                receipt.update = Update(
                    part_id=part.part_id,
                    remote_id=receipt.remote_id,
                    status=mapping.status(raw, self.spec.status_map, lambda: self._where("status_map")),  # type: ignore[arg-type]
                    reason=None if reason is None else str(reason),
                )
        return receipt

    def poll(self, receipts: list[Receipt]) -> list[Update | PollFailure]:
        st = self.spec.status
        if st is None or not receipts:
            return []  # a system without a status request: nothing to poll, not a failure
        budget = _PollBudget(time.monotonic() + self.spec.max_poll_seconds, self.spec.max_poll_bytes)
        if st.records:
            return self._poll_batch(st, receipts, budget)
        return self._poll_each(st, receipts, budget)

    def _poll_each(self, st: Status, receipts: list[Receipt], budget: _PollBudget) -> list[Update | PollFailure]:
        out: list[Update | PollFailure] = []
        limit = f"max_poll_seconds ({self.spec.max_poll_seconds:g} s)"
        for i, receipt in enumerate(in_turn(self.name, receipts, budget.deadline, limit)):
            try:
                rendered = self._render(st, {"remote_id": receipt.remote_id, "part_id": receipt.part_id}, ("status",))
                response = self._perform(rendered)
                self._expect(response, [200], lambda: self._where("status", "path"))
                out.append(self._update(receipt, self._json(response, lambda: self._where("status")), budget))
            except _Deferred as exc:
                log.warning("%s: %s; %d receipts left for the next sync", self.name, exc, len(receipts) - i)
                break
            except retry.HttpError as exc:
                if exc.retryable or exc.status in (401, 403):
                    raise  # the system or our credential, not this record: the poll as a whole failed
                out.append(PollFailure(part_id=receipt.part_id, remote_id=receipt.remote_id, message=str(exc)))
            except Unreachable:
                raise
            except DeliveryError as exc:
                out.append(PollFailure(part_id=receipt.part_id, remote_id=receipt.remote_id, message=str(exc)))
        return out

    def _poll_batch(self, st: Status, receipts: list[Receipt], budget: _PollBudget) -> list[Update | PollFailure]:
        out: list[Update | PollFailure] = []
        by_remote = {r.remote_id: r for r in receipts}
        ids = list(by_remote)
        size = self.spec.page_size
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            waiting = set(chunk)
            try:
                for record in self._records(st, {"remote_ids": chunk, "page_size": size}, budget.deadline):
                    rid = mapping.search(str(st.id), record, lambda: self._where("status", "id"))
                    receipt = by_remote.get(str(rid)) if rid is not None else None
                    if receipt is None or receipt.remote_id not in waiting:
                        continue
                    waiting.discard(receipt.remote_id)
                    try:
                        out.append(self._update(receipt, record, budget))
                    except _Deferred as exc:  # not returned: polled again at the next sync
                        log.warning("%s: %s %s", self.name, receipt.remote_id, exc)
                    except Unreachable:
                        raise
                    except DeliveryError as exc:
                        out.append(PollFailure(part_id=receipt.part_id, remote_id=receipt.remote_id, message=str(exc)))
            except _CutOff as exc:
                log.warning("%s: %s", self.name, exc)
                out += [self._failure(by_remote[r], str(exc)) for r in chunk if r in waiting]
            except (Unreachable, retry.HttpError):
                raise  # the system refused or failed the listing: the poll as a whole failed
            except DeliveryError as exc:  # a page that cannot be read: every receipt it was for
                out += [self._failure(by_remote[r], str(exc)) for r in chunk if r in waiting]
        return out

    @staticmethod
    def _failure(receipt: Receipt, message: str) -> PollFailure:
        return PollFailure(part_id=receipt.part_id, remote_id=receipt.remote_id, message=message)

    def _records(self, st: Status, context: dict[str, Any], deadline: float) -> Iterator[Any]:
        """The records of a batch status request, page after page, within the poll's bounds."""
        pag: Pagination | None = st.pagination
        rendered = self._render(st, context, ("status",))
        extra: dict[str, Any] = {}
        if pag and pag.type in ("page", "offset"):
            extra[str(pag.param)] = pag.start if pag.type == "page" else 0
            if pag.size_param:
                extra[pag.size_param] = pag.size
        seen: set[str] = set()
        url: str | None = None
        pages = pag.max_pages if pag else 1
        for n in range(1, pages + 1):
            if time.monotonic() > deadline:
                raise _CutOff(
                    f"{self._where('status', 'pagination')}: 轮询超过 max_poll_seconds "
                    f"({self.spec.max_poll_seconds:g} s) 已停止 (poll stopped after {n - 1} pages: out of time)"
                )
            page = dict(rendered, params={**rendered["params"], **extra}) if url is None else dict(rendered, path=url)
            if url is not None:
                page["params"] = {}
            response = self._perform(page)
            self._expect(response, [200], lambda: self._where("status", "path"))
            data = self._json(response, lambda: self._where("status"))
            records = mapping.search(str(st.records), data, lambda: self._where("status", "records"))
            if records is None:
                records = []
            if not isinstance(records, list):
                raise mapping.MappingError(
                    f"{self._where('status', 'records')}: {st.records!r} 不是列表 (not a list: {_shown(records)})"
                )
            yield from records
            if pag is None:
                return
            if pag.type == "cursor":
                cursor = mapping.search(str(pag.next), data, lambda: self._where("status", "pagination", "next"))
                if cursor in (None, "", False, [], {}):
                    return
                key = json.dumps(cursor, sort_keys=True, default=str)
                if key in seen:
                    raise _CutOff(
                        f"{self._where('status', 'pagination', 'next')}: 游标重复 {_shown(cursor)}，分页永不结束 "
                        f"(the cursor repeats: pages never end; stopped after {n} pages)"
                    )
                seen.add(key)
                extra = {str(pag.param): cursor}
            elif pag.type == "link":
                link = response.links.get("next", {}).get("url")
                if not link:
                    return
                url = urljoin(str(response.url), link)
                if not auth.same_origin(url, self._root) or url in seen:
                    raise _CutOff(
                        f"{self._where('status', 'pagination')}: Link next {url[:100]} 重复或在别的主机 "
                        f"(repeats or is on another host; stopped after {n} pages)"
                    )
                seen.add(url)
            else:
                if len(records) < pag.size:
                    return
                key_param = str(pag.param)
                extra[key_param] = extra[key_param] + (1 if pag.type == "page" else len(records))
        raise _CutOff(
            f"{self._where('status', 'pagination', 'max_pages')}: 分页超过 max_pages ({pages})，已停止 "
            "(pages never end: stopped at max_pages)"
        )

    def _update(self, receipt: Receipt, record: Any, budget: _PollBudget) -> Update:
        """One department record as the hub's Update (a MappingError naming FILE:LINE and the
        expression when it does not fit)."""
        st = self.spec.status
        assert st is not None
        raw = mapping.search(st.status, record, lambda: self._where("status", "status"))
        if raw is None or raw == "":
            raise mapping.MappingError(
                f"{self._where('status', 'status')}: 记录没有状态 (no status in the record at {st.status!r}"
                f" for {receipt.remote_id})"
            )
        status = mapping.status(raw, self.spec.status_map, lambda: self._where("status_map"))
        reason = mapping.search(st.reason, record, lambda: self._where("status", "reason")) if st.reason else None
        documents = self._documents(record, budget) if status in _DECISIONS and st.documents else []
        return Update(
            part_id=receipt.part_id,
            remote_id=receipt.remote_id,
            status=status,  # type: ignore[arg-type]
            reason=None if reason is None else str(reason),
            documents=documents,
        )

    def _documents(self, record: Any, budget: _PollBudget) -> list[Document]:
        """The record's result documents, fetched within the poll's deadline and its byte budget
        (max_poll_bytes). A record that does not fit what is left is _Deferred (the next sync
        polls it again); one that could never fit — more than max_documents, a document over
        max_answer_bytes, documents over the whole max_poll_bytes — is an error naming the limit."""
        spec = self.spec.status.documents  # type: ignore[union-attr]
        assert spec is not None
        items = mapping.search(spec.items, record, lambda: self._where("status", "documents", "items")) or []
        if not isinstance(items, list):
            raise mapping.MappingError(
                f"{self._where('status', 'documents', 'items')}: {spec.items!r} 不是列表 (not a list)"
            )
        if len(items) > self.spec.max_documents:
            raise mapping.MappingError(
                f"{self._where('max_documents')}: 结果文书过多 {len(items)} 份，超过 max_documents "
                f"({self.spec.max_documents}) (more result documents than max_documents)"
            )
        whole = budget.bytes_left == self.spec.max_poll_bytes  # the first record to spend the budget
        left = budget.bytes_left
        docs = []
        for item in items:
            name = mapping.search(spec.name, item, lambda: self._where("status", "documents", "name"), required=True)
            media_type = (
                mapping.search(spec.media_type, item, lambda: self._where("status", "documents", "media_type"))
                if spec.media_type
                else None
            )
            url = self._document_url(spec.url, item)
            if time.monotonic() > budget.deadline:
                raise self._out_of_time()
            limit = min(self.spec.max_answer_bytes, left)
            try:
                response = self._call("GET", url, deadline=budget.deadline, limit=limit)
            except TooLarge:
                if limit == self.spec.max_answer_bytes:
                    raise  # this one document is too large, whatever the poll
                if whole:
                    raise DeliveryError(
                        f"{self._where('max_poll_bytes')}: 结果文书合计超过 max_poll_bytes ({self.spec.max_poll_bytes}) "
                        "(this record's documents alone exceed max_poll_bytes)",
                        retryable=False,
                    ) from None
                raise _Deferred(
                    f"max_poll_bytes ({self.spec.max_poll_bytes}) 已用完，留待下次同步 "
                    "(the poll's document budget is spent: left for the next sync)"
                ) from None
            except Unreachable:
                if time.monotonic() >= budget.deadline:
                    raise self._out_of_time() from None
                raise
            self._expect(response, [200], lambda: self._where("status", "documents", "url"))
            left -= len(response.content)
            docs.append(
                Document(name=str(name), media_type=str(media_type or "application/pdf"), content=response.content)
            )
        budget.bytes_left = left  # spent only by a record that is returned
        return docs

    def _out_of_time(self) -> _Deferred:
        return _Deferred(
            f"轮询超过 max_poll_seconds ({self.spec.max_poll_seconds:g} s)，结果文书留待下次同步 "
            "(out of poll time while fetching result documents: left for the next sync)"
        )

    def _document_url(self, template: Any, item: Any) -> str:
        """A template with text of its own is a path below base_url (values percent-encoded); a
        single expression is a link from the answer, resolved against base_url (RFC 3986) and
        fetched only from the same host."""
        where = lambda: self._where("status", "documents", "url")  # noqa: E731
        if isinstance(template, str) and (whole := _WHOLE.match(template)):
            link = mapping.search(whole.group(1), item, where, required=True)
            url = urljoin(self._root + "/", str(link))
        else:
            url = self._root + str(mapping.render(template, item, where, quote_values=True))
        if not auth.same_origin(url, self._root):
            raise mapping.MappingError(
                f"{_place(where)}: 文档链接不在本系统主机上 (document link on another host: {urlsplit(url).netloc})"
            )
        return url

    def verify(self, kind: str, subject: dict[str, Any]) -> Verification:
        v = self.spec.verify
        if v is None:
            raise DeliveryError(
                f"{self._where('verify')}: 未配置 verify (no verify request configured)", retryable=False
            )
        response = self._perform(self._render(v, {"kind": kind, "subject": subject}, ("verify",)))
        self._expect(response, v.ok_statuses, lambda: self._where("verify", "ok_statuses"))
        data = self._json(response, lambda: self._where("verify"))
        ok = mapping.search(v.ok, data, lambda: self._where("verify", "ok")) is True
        detail = {
            k: mapping.search(e, data, lambda k=k: self._where("verify", "detail", k)) for k, e in v.detail.items()
        }
        return Verification(kind=kind, ok=ok, detail=detail)

    def licences(self, holder_id: str, type_code: str) -> list[LicenceRecord]:
        """电子证照库: the holder's licences of one type, each read by `licences.fields`; an
        answer with more than MAX_LICENCES, or a record that does not read as a licence, is
        refused naming the config key (nothing half-read reaches intake)."""
        v = self.spec.licences
        if v is None:
            raise DeliveryError(
                f"{self._where('licences')}: 未配置 licences (no licence lookup configured)", retryable=False
            )
        context = {"holder_id": holder_id, "type_code": type_code}
        response = self._perform(self._render(v, context, ("licences",)))
        self._expect(response, v.ok_statuses, lambda: self._where("licences", "ok_statuses"))
        data = self._json(response, lambda: self._where("licences"))
        records = mapping.search(v.records, data, lambda: self._where("licences", "records")) or []
        if not isinstance(records, list):
            raise DeliveryError(f"{self._where('licences', 'records')}: 应答不是列表 (not a list)", retryable=False)
        if len(records) > MAX_LICENCES:
            raise DeliveryError(
                f"{self._where('licences', 'records')}: 应答有 {len(records)} 条证照，超过 {MAX_LICENCES} "
                "(too many licences in one answer)",
                retryable=False,
            )
        found = []
        for i, record in enumerate(records):
            values: dict[str, Any] = {"type_code": type_code}
            for key, expr in v.fields.items():
                value = mapping.search(expr, record, lambda key=key: self._where("licences", "fields", key))
                if value is not None and value != "":
                    # text another system sent, made storable (no controls or bidi overrides)
                    values[key] = text.clean(value if isinstance(value, str) else str(value), multiline=False)
            if "status" in values and values["status"] in v.status_map:
                values["status"] = v.status_map[values["status"]]
            try:
                found.append(LicenceRecord.model_validate(values | {"source": self.name}))
            except ValidationError as exc:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
                raise DeliveryError(
                    f"{self._where('licences', 'fields')}: 第{i + 1}条证照无法读取 (record {i} unreadable): {problem}",
                    retryable=False,
                ) from None
        return found

    # ------------------------------------------------------------------ intake source (hub's own shape)

    def list_batches(self) -> list[Batch]:
        """`GET {intake_path}`: `{"items": [{"id", "complete", "files": [{"name", "size"}]}]}`;
        only complete batches (the source's `.ok`) are offered."""
        data = self._json(self._call("GET", self.spec.intake_path))
        found = []
        for item in data.get("items", []) if isinstance(data, dict) else []:
            if not isinstance(item, dict) or not item.get("complete"):
                continue
            if not BATCH_ID.fullmatch(str(item.get("id", ""))):
                log.warning("%s: batch id %r is not a safe name; left on the source", self.name, item.get("id"))
                continue
            found.append(Batch(id=str(item["id"]), name=str(item["id"])))
        return found

    def fetch(self, batch: Batch, into: Path) -> None:
        """Each file of `GET {intake_path}/{id}` from `…/{id}/files/{name}`, streamed to disk."""
        base = f"{self.spec.intake_path}/{quote(batch.id)}"
        data = self._json(self._call("GET", base))
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, dict) and "name" in f for f in files):
            raise DeliveryError(f"{self.name}: 批次 {batch.id} 的文件列表无效 (no valid file list)", retryable=False)
        for f in files:
            name = str(f["name"])
            target = (into / name).resolve()
            if not target.is_relative_to(into.resolve()) or name.startswith("/"):
                raise DeliveryError(
                    f"{self.name}: 不安全的文件名 unsafe file name in batch {batch.id}", retryable=False
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            size = f.get("size")
            listed = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
            self._download(f"{base}/files/{quote(name)}", target, listed)

    def _download(self, path: str, target: Path, listed: int | None = None) -> None:
        """Stream one file to `.NAME.part`, renamed into place once complete (and, when the
        listing gave its size, once exactly that size: never more is written); never more than
        max_download_bytes, all within max_call_seconds (retries included, however slowly the
        bytes come); nothing left behind when it fails."""
        url = self._root + path
        partial = target.with_name(f".{target.name}.part")
        cap = self.spec.max_download_bytes
        if listed is not None and listed > cap:
            raise self._too_big(url)
        try:
            with self._bounded() as until:
                self._retrying(until)(self._download_once, url, partial, listed, until)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)

    def _download_once(self, url: str, partial: Path, listed: int | None, deadline: float) -> None:
        request = self._client.build_request("GET", url)
        self._auth.apply(request)
        self._arm(request, deadline)
        limit = listed if listed is not None else self.spec.max_download_bytes
        try:
            response = self._client.send(request, stream=True)
            try:
                if response.status_code != 200:  # a redirect's body is not the file either
                    raise self._http_error(self._read(response, deadline))
                written = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():  # as they come: a chunk size would wait to fill it
                        written += len(chunk)
                        if written > limit:
                            raise self._not_as_listed(url, "it grew") if listed is not None else self._too_big(url)
                        out.write(chunk)
                        if time.monotonic() > deadline:
                            raise self._too_slow()
                if listed is not None and written != listed:
                    raise self._not_as_listed(url, "bytes missing")
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.name}: 超时 timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise self._connection_failed(exc) from None

    def _too_big(self, url: str) -> DeliveryError:
        return DeliveryError(
            f"{self._where('max_download_bytes')}: 文件 {urlsplit(url).path} 超过 max_download_bytes "
            f"({self.spec.max_download_bytes}) (file larger than max_download_bytes)",
            retryable=False,
        )

    def _not_as_listed(self, url: str, why: str) -> DeliveryError:
        # the file changed between the listing and the download: a later try may find it settled
        path = urlsplit(url).path
        return DeliveryError(
            f"{self.name}: 下载不完整 short download {path} (not the listed size: {why})", retryable=True
        )

    def ack(self, batch: Batch, report: Path | None = None) -> None:
        body = report.read_bytes() if report is not None else b""
        self._call("POST", f"{self.spec.intake_path}/{quote(batch.id)}/ack", content=body, headers=_NDJSON)

    def reject(self, batch: Batch, report: Path) -> None:
        body = report.read_bytes()
        self._call("POST", f"{self.spec.intake_path}/{quote(batch.id)}/reject", content=body, headers=_NDJSON)


_NDJSON = {"Content-Type": "application/x-ndjson"}
# the httpcore steps of an attempt before its answer's body (read chunk by chunk, checked each)
_STEPS = tuple(
    f"{step}.started"
    for step in ("connect_tcp", "start_tls", "send_request_headers", "send_request_body", "receive_response_headers")
)
ERROR_BODY_BYTES = 64 * 1024  # of an error answer: enough for its message
# httpx's own defaults: not what ops configure, and noise in a preview
_PREVIEW_HIDDEN = {"accept", "accept-encoding", "connection", "user-agent", "host", "content-length"}
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


def _place(where: mapping.Where) -> str:
    return where() if callable(where) else where


def _header(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:80]


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("error", "") if isinstance(data, dict) else data)[:200]
