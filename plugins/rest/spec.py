"""The configuration of a `rest` connection, after Airbyte's low-code manifests (an `HttpRequester`
per verb, a `RecordSelector`, a `DefaultPaginator`, authenticators) cut down to what a county
department system needs: each verb is a request (method, path, headers, query, body template) and
a reading of its answer (JMESPath selectors, hub.mapping), with the bounds of every answer (size,
total time, pages) and the statuses that count as success named in the mapping.

    type: rest
    config:
      base_url: https://dept.example.gov.cn/api
      auth: {oauth2: {token_url: …, client_id: …, client_secret: ${ENV}}}
      materials: {mode: inline}
      check: {path: /me}
      submit: {path: /cases, body: {…}, remote_id: data.caseNo}
      status: {path: "/cases/{{ remote_id }}", status: data.status}
      status_map: {DONE: approved, BH: supplement_requested}

`profile: hub-api` fills in the verbs of a system built to the hub's own API (profiles/hub-api.yaml);
the connection's own keys win over the profile's. Reference: docs/connect/rest.md."""

from __future__ import annotations

import re
from functools import cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hub.connectors import MaterialDelivery
from hub.mapping import Expression, StatusMap, Template
from hub.secrets import Secret

PROFILES = Path(__file__).with_name("profiles")
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_PATH = r"^(/|\{\{|https?://)"  # a path below base_url (or, for documents, a full URL)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_unless_loopback(url: HttpUrl) -> HttpUrl:
    if url.scheme != "https" and not _loopback(url.host or ""):
        raise ValueError("只允许 https（回环地址的沙箱除外） (https required except on loopback)")
    return url


# ---------------------------------------------------------------- auth


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiKey(_Strict):
    """One key — `{header: X-Api-Key, value: ${K}}` or `{query: appkey, value: ${K}}` — or several
    credentials at once, each value a secret: `{headers: {X-App-Key: ${A}, X-App-Secret: ${B}}}`
    and/or `{query: {appkey: ${A}}}` (the AppKey + AppSecret pair many government gateways ask for)."""

    header: str | None = Field(default=None, description="send the key in this header, e.g. X-Api-Key")
    query: str | dict[str, Secret] | None = Field(
        default=None, description="or in this query parameter, e.g. appkey (or several: {name: secret})"
    )
    value: Secret | None = None
    headers: dict[str, Secret] | None = Field(default=None, description="several headers, each value a secret")

    @model_validator(mode="after")
    def _one_place(self) -> ApiKey:
        several = self.headers is not None or isinstance(self.query, dict)
        if several:
            if self.header is not None or self.value is not None:
                raise ValueError(
                    "api_key 要么 header/query + value，要么 headers/query 映射 "
                    "(either header or query with value, or headers and/or query as name: secret maps)"
                )
            if not (self.headers or self.query):
                raise ValueError("api_key.headers/query 不能为空 (at least one credential)")
            return self
        if (self.header is None) == (self.query is None):
            raise ValueError("api_key 需要 header 或 query 之一 (exactly one of header, query)")
        if self.value is None:
            raise ValueError("api_key 需要 value (value: ${ENV} or file:/path)")
        return self

    def credentials(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query parameters) with their secret values."""
        if self.headers is not None or isinstance(self.query, dict):
            headers = {k: v.get_secret_value() for k, v in (self.headers or {}).items()}
            query = {k: v.get_secret_value() for k, v in (self.query or {}).items()}  # type: ignore[union-attr]
            return headers, query
        value = self.value.get_secret_value()  # type: ignore[union-attr]
        return ({self.header: value}, {}) if self.header else ({}, {str(self.query): value})


class HmacKey(_Strict):
    """Each request carries X-Hub-Key, X-Hub-Timestamp and X-Hub-Signature (plugins/rest/signing.py,
    byte by byte in docs/connect/rest.md)."""

    key_id: str
    secret: Secret


class OAuth2(_Strict):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched from `token_url`, cached until
    shortly before it expires, fetched again then or when the API answers 401."""

    token_url: HttpUrl
    client_id: str
    client_secret: Secret
    scope: str | None = None
    client_auth: Literal["body", "basic"] = Field(
        default="body", description="client id and secret in the form body, or as HTTP Basic (RFC 6749 §2.3.1)"
    )
    access_token: Expression = Field(default="access_token", description="where the token is in the answer")
    expires_in: Expression = Field(default="expires_in", description="its lifetime in seconds")
    default_expires_seconds: float = Field(default=300, gt=0, description="when the answer gives no lifetime")

    @field_validator("token_url")
    @classmethod
    def _tls(cls, v: HttpUrl) -> HttpUrl:
        return _tls_unless_loopback(v)


class Auth(_Strict):
    """Exactly one of: `bearer: ${ENV}`; `api_key: {header|query: NAME, value: ${ENV}}`;
    `hmac: {key_id, secret}` (or, the older spelling, `key_id` and `secret` at this level);
    `oauth2: {token_url, client_id, client_secret, scope}`. (One model rather than a tagged union:
    an error then names `config.auth.oauth2.client_secret`, the path ops wrote.)"""

    bearer: Secret | None = None
    api_key: ApiKey | None = None
    hmac: HmacKey | None = None
    oauth2: OAuth2 | None = None
    key_id: str | None = None
    secret: Secret | None = None

    @model_validator(mode="after")
    def _one(self) -> Auth:
        if (self.key_id is None) != (self.secret is None):
            raise ValueError("key_id 与 secret 须同时给出 (hmac needs key_id and secret)")
        if self.key_id is not None and self.hmac is None:
            self.hmac = HmacKey(key_id=self.key_id, secret=self.secret)  # type: ignore[arg-type]
        kinds = [k for k in ("bearer", "api_key", "hmac", "oauth2") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "auth 须且只须一种：bearer、api_key、hmac、oauth2 (exactly one of bearer, api_key, hmac, oauth2)"
            )
        return self


class ClientCert(_Strict):
    """Mutual TLS: the hub presents this certificate (PEM; the key unencrypted, readable by the hub
    only)."""

    cert_file: Path
    key_file: Path

    @field_validator("cert_file", "key_file")
    @classmethod
    def _exists(cls, v: Path) -> Path:
        if not v.expanduser().is_file():
            raise ValueError(f"文件不存在 (no such file): {v}")
        return v.expanduser()


# ---------------------------------------------------------------- requests


_CREDENTIAL_NAME = re.compile(r"authorization|secret|token|password|passwd|key|sign", re.IGNORECASE)


class Request(_Strict):
    """One HTTP request: `path` below base_url, every string a template (hub.mapping) over the
    verb's context; `body` is sent as JSON (or as the `part` field of a multipart upload)."""

    method: Method = "GET"
    path: Template = Field(description='e.g. "/cases/{{ remote_id }}" (values percent-encoded)')
    headers: dict[str, Template] = Field(default_factory=dict)
    query: dict[str, Template] = Field(default_factory=dict)
    body: Template = None

    @field_validator("headers", "query")
    @classmethod
    def _no_literal_credential(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # a credential written into a request template sits in the file in clear, in git, in
        # `hub connectors render`: credentials belong in `auth:` (secrets, masked)
        for name, value in v.items():
            if _CREDENTIAL_NAME.search(name) and isinstance(value, (str, int, float)) and "{{" not in str(value):
                raise ValueError(
                    f"{info.field_name}.{name} 看起来是凭据，不能写成字面值：请写在 auth: 中，例如 "
                    f"auth: {{api_key: {{{info.field_name}: {{{name}: ${{ENV}}}}}}}} "
                    f"({name} looks like a credential written literally: put it under auth:, whose values are "
                    "secrets, e.g. auth.api_key.headers / auth.api_key.query)"
                )
        return v

    @field_validator("path")
    @classmethod
    def _relative(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.startswith("/"):
            raise ValueError("path 须以 / 开头，相对于 base_url (a path below base_url, starting with /)")
        return v


class Check(Request):
    """An authenticated probe: a wrong credential must fail it (a bare /health proves nothing)."""

    ok_statuses: list[int] = Field(default=[200], min_length=1)


class Decision(_Strict):
    """A stateless system answers the submission with its decision."""

    status: Expression
    reason: Expression | None = None


class Multipart(_Strict):
    part_field: str = Field(default="part", description="form field holding the body as JSON")
    file_field: str = Field(default="files", description="form field of every material file")


class Submit(Request):
    method: Method = "POST"
    success_statuses: list[int] = Field(default=[200, 201], min_length=1, description="only these are delivered")
    remote_id: Expression = Field(description="the department's id for the part, e.g. data.caseNo")
    decision: Decision | None = None
    multipart: Multipart = Field(default_factory=Multipart)


class Documents(_Strict):
    """Result documents in a status record: `items` selects the list; per item `name` and
    `media_type` are expressions, `url` a template (a path below base_url, or a URL on the same
    host: a token is never sent elsewhere)."""

    items: Expression
    name: Expression = "name"
    url: Template
    media_type: Expression | None = None


class Pagination(_Strict):
    """How the next page is asked for (Airbyte's DefaultPaginator):

    - `cursor`: `next` reads the next cursor from the answer, sent as query `param`; the last page
      has none (null, "", false). A page number the system hands back (`next_page`) is a cursor too.
    - `page`: `param` counts from `start`; `offset`: `param` advances by the records received;
      both stop at a page with fewer than `size` records (sent as `size_param` when named).
    - `link`: the `Link: <…>; rel="next"` header (RFC 8288), on the same host only.

    Every poll stops after `max_pages` pages, on a cursor seen before, and at max_poll_seconds."""

    type: Literal["cursor", "page", "offset", "link"]
    next: Expression | None = None
    param: str | None = None
    start: int = 1
    size: int = Field(default=100, ge=1, le=10_000)
    size_param: str | None = None
    max_pages: int = Field(default=50, ge=1, le=10_000)

    @model_validator(mode="after")
    def _complete(self) -> Pagination:
        if self.type == "cursor" and not (self.next and self.param):
            raise ValueError("cursor 分页需要 next 与 param (cursor pagination needs next and param)")
        if self.type in ("page", "offset") and not self.param:
            raise ValueError(f"{self.type} 分页需要 param ({self.type} pagination needs param)")
        return self


class Status(Request):
    """Per record (`path` names one remote id: context `remote_id`, `part_id`) or, with `records`,
    a batch: one request for up to `page_size` receipts (context `remote_ids`), its records
    selected by `records` and matched to receipts by `id`."""

    records: Expression | None = None
    id: Expression | None = None
    status: Expression
    reason: Expression | None = None
    documents: Documents | None = None
    pagination: Pagination | None = None

    @model_validator(mode="after")
    def _batch(self) -> Status:
        if self.records and not self.id:
            raise ValueError("批量状态查询需要 id (a batch status poll needs id: the remote id of a record)")
        if self.pagination and not self.records:
            raise ValueError("分页只用于批量查询 (pagination needs records: a batch poll)")
        return self


class Verify(Request):
    """网上核验: context `kind` and `subject` (`subject.id_number`, `subject.name`, …)."""

    method: Method = "POST"
    ok: Expression = Field(description='true when verified, e.g. "result.valid == `true`"')
    detail: dict[str, Expression] = Field(default_factory=dict)
    ok_statuses: list[int] = Field(default=[200], min_length=1)


LICENCE_FIELDS = (
    "type_code",
    "type_name",
    "number",
    "holder_name",
    "holder_id",
    "issuer",
    "issued_on",
    "valid_from",
    "valid_until",
    "status",
    "representative_id",
    "document_url",
)


class Licences(Request):
    """电子证照 lookup: context `holder_id` and `type_code`; the answer's `records` (a list) each
    read by `fields` (a LicenceRecord field -> expression in the record); `status_map` turns the
    library's words into valid|revoked|suspended|expired."""

    method: Method = "POST"
    records: Expression = Field(description='the list of licences in the answer, e.g. "data.licences"')
    fields: dict[str, Expression] = Field(description="LicenceRecord field -> expression in one record")
    status_map: dict[str, Literal["valid", "revoked", "suspended", "expired"]] = Field(default_factory=dict)
    ok_statuses: list[int] = Field(default=[200], min_length=1)

    @model_validator(mode="after")
    def _known_fields(self) -> Licences:
        if unknown := sorted(set(self.fields) - set(LICENCE_FIELDS)):
            raise ValueError(f"未知的证照字段 (unknown licence fields) {unknown}; 可选: {', '.join(LICENCE_FIELDS)}")
        # status too: a licence whose status is not read would otherwise pass for valid
        if missing := sorted({"number", "holder_id", "holder_name", "issuer", "status"} - set(self.fields)):
            raise ValueError(f"证照字段缺少 (licence fields missing): {', '.join(missing)}")
        return self


# ---------------------------------------------------------------- the connection


class RestMaterials(MaterialDelivery):
    @field_validator("mode")
    @classmethod
    def _carried(cls, v: str) -> str:
        if v == "files":
            raise ValueError("rest 连接不支持 files 模式 (files is for sftp: use inline, multipart or pull)")
        return v


class RestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str | None = Field(default=None, description="a shipped preset (plugins/rest/profiles/NAME.yaml)")
    base_url: HttpUrl = Field(description="API root, e.g. https://ybj.example.gov.cn/api")
    auth: Auth | None = Field(
        default=None, description="bearer, api_key, hmac or oauth2 (secrets as ${ENV} or file:/path)"
    )
    client_cert: ClientCert | None = Field(default=None, description="mutual TLS")
    ca_file: Path | None = Field(default=None, description="CA bundle for a department's private CA")
    connect_timeout_seconds: float = Field(default=5, gt=0)
    timeout_seconds: float = Field(default=30, gt=0, description="between two reads of one answer")
    max_call_seconds: float = Field(
        default=120,
        gt=0,
        le=3600,
        description="one call in total, retries included (keep it below the dispatch lease, 300 s)",
    )
    max_poll_seconds: float = Field(default=240, gt=0, le=3600, description="one poll in total, every page")
    retries: int = Field(default=3, ge=0, le=10, description="retries on 429/5xx within one call")
    max_retry_after_seconds: float = Field(default=30, ge=0)
    page_size: int = Field(default=100, ge=1, le=1000, description="receipts per batch status request")
    max_answer_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="largest answer read into memory (a JSON answer, a result document)"
    )
    max_documents: int = Field(
        default=20, ge=1, le=1000, description="result documents one status record may name (more: a poll error)"
    )
    max_poll_bytes: int = Field(
        default=256 * 2**20,
        ge=1024,
        description="result documents one poll holds in memory; the records past it wait for the next sync",
    )
    max_download_bytes: int = Field(
        default=8 * 2**30, ge=1, description="largest intake batch file downloaded (when the listing gives no size)"
    )
    field_map: dict[str, str] = Field(default_factory=dict, description="hub form field -> department field")
    materials: RestMaterials = Field(default_factory=RestMaterials)
    check: Check | None = None
    submit: Submit | None = None
    status: Status | None = None
    status_map: StatusMap = Field(default_factory=dict)
    verify: Verify | None = None
    licences: Licences | None = None
    intake_path: str = Field(
        default="/intake/batches", pattern=r"^/", description="batches resource, when this system is an intake source"
    )
    # the top-level keys the connection file wrote itself (the others came from its profile)
    _own: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("base_url")
    @classmethod
    def _tls(cls, v: HttpUrl) -> HttpUrl:
        return _tls_unless_loopback(v)

    @model_validator(mode="wrap")
    @classmethod
    def _with_profile(cls, data: Any, handler: Any) -> RestSpec:
        own = frozenset(data) if isinstance(data, dict) else frozenset()
        if isinstance(data, dict) and data.get("profile") is not None:
            data = merged(profile(str(data["profile"])), data)
        spec = handler(data)
        spec._own = own
        return spec

    @model_validator(mode="after")
    def _complete(self) -> RestSpec:
        if self.auth is None and self.client_cert is None:
            raise ValueError("需要 auth 或 client_cert (a connection must authenticate: auth or client_cert)")
        if (self.submit or self.status or self.verify or self.licences) and self.check is None:
            raise ValueError(
                "需要 check：一个带认证的探测请求 (check: an authenticated probe request, e.g. {path: /me})"
            )
        return self

    def from_profile(self, key: str) -> bool:
        return self.profile is not None and key not in self._own


@cache
def _profile_text(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROFILES / f"{name}.yaml").read_text(encoding="utf-8")) or {}


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def profile(name: str) -> dict[str, Any]:
    if name not in profiles():
        raise ValueError(f"未知的 profile {name!r} (unknown profile; shipped: {', '.join(profiles())})")
    return _profile_text(name)


def merged(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` over `base`, mappings merged key by key (a connection overrides one field of a verb)."""
    out = dict(base)
    for key, value in own.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
