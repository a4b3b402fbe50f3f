"""`rest` connector: a department system with a JSON HTTP API (e.g. 医保经办系统).

Bearer token or HMAC-signed requests, TLS verified (plain http only to loopback, for the
sandbox), connect/read timeouts, retries on 429 and 5xx honouring Retry-After, pagination when
polling. The API it speaks is documented in docs/connectors.md (the sandbox serves the same)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import tenacity

from hub.connectors import (
    BATCH_ID,
    Batch,
    CheckResult,
    Connector,
    DeliveryError,
    Document,
    PartMessage,
    Receipt,
    Update,
)
from plugins.rest import retry
from plugins.rest.signing import sign
from plugins.rest.spec import BearerAuth, RestSpec

log = logging.getLogger(__name__)


class RestConnector(Connector):
    type = "rest"
    Spec = RestSpec
    description = "JSON over HTTPS: bearer or HMAC auth, retries with Retry-After, paginated polls"

    def __init__(self, name: str, spec: RestSpec):
        super().__init__(name, spec)
        self.spec: RestSpec = spec
        self._root = str(spec.base_url).rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_seconds, connect=spec.connect_timeout_seconds),
            verify=str(spec.ca_file) if spec.ca_file else True,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ transport

    def _headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        auth = self.spec.auth
        if isinstance(auth, BearerAuth):
            return {"Authorization": f"Bearer {auth.bearer.get_secret_value()}"}
        ts = str(int(time.time()))
        path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
        return {
            "X-Hub-Key": auth.key_id,
            "X-Hub-Timestamp": ts,
            "X-Hub-Signature": sign(auth.secret.get_secret_value(), method, path, ts, body),
        }

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        request = self._client.build_request(
            method, self._root + path, json=json, params=params, headers=headers, content=content
        )
        request.headers.update(self._headers(method, str(request.url), request.content))
        return self._retrying()(self._send, request)

    def _retrying(self) -> tenacity.Retrying:
        # one per call: a Retrying keeps the state of the call it runs
        return retry.policy(self.spec.retries, self.spec.max_retry_after_seconds)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """One attempt: the answer when it is not an error, else a DeliveryError saying whether
        trying again can help."""
        try:
            streamed = self._client.send(request, stream=True)
            try:
                response = self._read(streamed)
            finally:
                streamed.close()
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{self.name}: 超时 timeout ({type(exc).__name__})", retryable=True) from None
        except httpx.TransportError as exc:
            raise self._connection_failed(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        return response

    def _read(self, streamed: httpx.Response) -> httpx.Response:
        """The answer read in full, but never more than max_answer_bytes of it (decoded: a small
        gzip body must not unpack into gigabytes); an error's body only as far as its detail needs."""
        limit = ERROR_BODY_BYTES if streamed.status_code >= 400 else self.spec.max_answer_bytes
        body = bytearray()
        for chunk in streamed.iter_bytes():
            body += chunk
            if len(body) > limit:
                if streamed.status_code >= 400:
                    break
                raise DeliveryError(
                    f"{self.name}: 应答过大 answer larger than max_answer_bytes ({limit})", retryable=False
                )
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
        return DeliveryError(f"{self.name}: 连接失败 connection failed ({type(exc).__name__})", retryable=True)

    # ------------------------------------------------------------------ verbs

    def check(self) -> CheckResult:
        try:
            self._call("GET", "/health")
        except DeliveryError as exc:
            return CheckResult(ok=False, message=str(exc))
        return CheckResult(ok=True, message="health OK")

    def submit(self, part: PartMessage) -> Receipt:
        body = part.model_dump(mode="json")
        body["form"] = {self.spec.field_map.get(k, k): v for k, v in part.form.items()}
        data = self._call("POST", "/parts", json=body, headers={"Idempotency-Key": part.part_id}).json()
        try:
            return Receipt(part_id=part.part_id, remote_id=str(data["id"]))
        except (KeyError, TypeError):
            raise DeliveryError(f"{self.name}: 回执缺少 id (receipt without id)", retryable=False) from None

    def poll(self, receipts: list[Receipt]) -> list[Update]:
        by_remote = {r.remote_id: r for r in receipts}
        updates: list[Update] = []
        ids = list(by_remote)
        for start in range(0, len(ids), self.spec.page_size):
            chunk = ids[start : start + self.spec.page_size]
            page: int | None = 1
            # every page but the last brings at least one of the chunk's parts, so n parts take at
            # most n + 1 pages: a system whose next_page never ends (or points back) is cut off there
            for _ in range(len(chunk) + 1):
                data = self._call(
                    "GET", "/parts", params={"ids": ",".join(chunk), "page": page, "page_size": self.spec.page_size}
                ).json()
                for item in data.get("items", []):
                    receipt = by_remote.get(str(item.get("id")))
                    if receipt is None:
                        continue
                    docs = [
                        Document(
                            name=d["name"],
                            media_type=d.get("media_type", "application/pdf"),
                            content=self._call("GET", f"/documents/{d['id']}").content,
                        )
                        for d in item.get("documents", [])
                    ]
                    updates.append(
                        Update(
                            part_id=receipt.part_id,
                            remote_id=receipt.remote_id,
                            status=item["status"],
                            reason=item.get("reason"),
                            documents=docs,
                        )
                    )
                page = data.get("next_page")
                if not page:
                    break
            else:
                log.warning(
                    "%s: poll stopped after %d pages for %d parts (next_page never ends)",
                    self.name,
                    len(chunk) + 1,
                    len(chunk),
                )
        return updates

    # ------------------------------------------------------------------ intake source

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

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise DeliveryError(f"{self.name}: 应答不是JSON (answer is not JSON)", retryable=False) from None

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
        listing gave its size, once exactly that size: never more is written); retried like every
        call, and nothing left behind when it fails."""
        url = self._root + path
        partial = target.with_name(f".{target.name}.part")
        try:
            self._retrying()(self._download_once, url, partial, listed)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)

    def _download_once(self, url: str, partial: Path, listed: int | None) -> None:
        try:
            with self._client.stream("GET", url, headers=self._headers("GET", url, b"")) as response:
                if response.status_code != 200:  # a redirect's body is not the file either
                    raise self._http_error(self._read(response))
                written = 0
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 16):
                        written += len(chunk)
                        if listed is not None and written > listed:
                            raise self._not_as_listed(url, "it grew")
                        out.write(chunk)
                if listed is not None and written != listed:
                    raise self._not_as_listed(url, "bytes missing")
        except httpx.TransportError as exc:
            raise self._connection_failed(exc) from None

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
ERROR_BODY_BYTES = 64 * 1024  # of an error answer: enough for its message
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("error", "") if isinstance(data, dict) else data)[:200]
