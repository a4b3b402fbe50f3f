"""The configuration of an `sftp` connection: where the server is, how its host key is pinned,
how we log in, the folders of the exchange, and the shape of the files exchanged.

Without `outgoing` and `results` a connection speaks the hub's own shape (the default preset,
what the sandbox 社保 system speaks):

    outgoing: {name: "{{ part.part_id }}.json", format: json}          # the whole part, as the hub sends it
    results:  {name: "{{ part_id }}.result.json", format: json,
               status: status, reason: reason, documents: documents}

A department with its own naming and formats writes its own (see docs/connect/sftp.md):

    encoding: gb18030
    materials: {mode: files}
    outgoing:
      name: "SB_{{ part.item_code }}_{{ part.part_id }}.xml"
      format: xml
      root: Case
      body: {CaseNo: "{{ part.part_id }}", Name: "{{ part.applicant_name }}", ...}
      material_name: "SB_{{ part.part_id }}_{{ index }}_{{ material.filename }}"
    results:
      name: "RES_{{ part_id }}.csv"
      format: csv
      status: 状态
      reason: 原因
    status_map: {已办结: approved, 退回: supplement_requested, 不予受理: denied}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    FilePath,
    Tag,
    field_validator,
    model_validator,
)

from hub.connectors import MaterialDelivery
from hub.mapping import Expression, StatusMap, Template, expressions
from hub.secrets import Secret

# a department's result is read into memory: its file, and its documents (all of them together)
MAX_RESULT_BYTES = 2**20
MAX_DOCUMENT_BYTES = 64 * 2**20
# a poll's byte budget holds at least one result with all its documents, so every poll reads one
MIN_POLL_BYTES = MAX_RESULT_BYTES + MAX_DOCUMENT_BYTES
# how long a submit cut at max_call_seconds takes to unwind (the cut transport's thread joined, the
# session closed): paramiko's waits poll every 0.1 s, so this is a wide margin
CUT_SECONDS = 5.0


class PasswordAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Secret


class KeyAuth(BaseModel):
    """An Ed25519, ECDSA or RSA private key in OpenSSH or PEM form, e.g. `file:/run/secrets/sb_key`."""

    model_config = ConfigDict(extra="forbid")
    private_key: Secret
    passphrase: Secret | None = None


def _auth_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "key" if "private_key" in value else "password"
    return "key" if isinstance(value, KeyAuth) else "password"


Auth = Annotated[Annotated[PasswordAuth, Tag("password")] | Annotated[KeyAuth, Tag("key")], Discriminator(_auth_kind)]

_EXPR = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a name with nothing JMESPath would read as syntax: a CSV header such as 状态 or 办理结果
_PLAIN_NAME = re.compile(r"[^\s.\[\]{}()|&!@*<>=,:;'\"`$\\/+-]+")


def _plain_name(value: Any) -> Any:
    """A bare column or element name that is not a JMESPath identifier (状态: JMESPath's unquoted
    identifiers are ASCII) is taken as that key, as if written `"状态"`: ops write the header the
    department's file has. Anything else is an expression as written."""
    if isinstance(value, str) and _PLAIN_NAME.fullmatch(value) and not _IDENTIFIER.fullmatch(value):
        return f'"{value}"'
    return value


Selector = Annotated[Expression, BeforeValidator(_plain_name)]


def _file_name_template(value: Any) -> Any:
    """A file name template must make one path component: its fixed text may not hold a path
    separator or `..`, nor start with a dot (our temporary files are hidden). What the expressions
    give is checked again for each file."""
    if not isinstance(value, str):
        raise ValueError("文件名模板须为字符串 (a file name template is a string)")
    fixed = _EXPR.sub("", value)
    if any(c in fixed for c in "/\\\0") or ".." in fixed or value.startswith("."):
        raise ValueError(
            f"文件名模板 {value!r} 须为单个文件名：不得含 '/'、'\\'、'..' 或以 '.' 开头 "
            "(a file name template makes one file name in its folder: no '/', '\\' or '..', not hidden)"
        )
    if not value.strip():
        raise ValueError("文件名模板为空 (empty file name template)")
    return value


NameTemplate = Annotated[Template, BeforeValidator(_file_name_template)]

Format = Literal["json", "xml", "csv"]
_XML_NAME = re.compile(r"[^\W\d][\w.-]*")


class Outgoing(BaseModel):
    """The part file the hub writes to `outbox_dir` (and the material files beside it)."""

    model_config = ConfigDict(extra="forbid")
    name: NameTemplate = Field(
        default="{{ part.part_id }}.json",
        description="file name template (one file name; sees `part`, `materials`)",
    )
    format: Format = Field(default="json", description="json, xml or csv, in the connection's `encoding`")
    root: str = Field(default="part", description="xml: the root element's name")
    body: Template = Field(
        default=None,
        description="template of the file's content; none: the whole part as the hub sends it "
        "(materials included, with `file`, `content` or `url` as the materials mode gives)",
    )
    material_name: NameTemplate = Field(
        default="{{ part.part_id }}_{{ index }}_{{ material.filename }}",
        description="files mode: each material's file name, beside the part (sees `part`, `material`, `index` from 1)",
    )

    @field_validator("name", "material_name")
    @classmethod
    def _per_part(cls, v: str) -> str:
        return _naming(v, ("part_id",), "part.part_id")

    @field_validator("root")
    @classmethod
    def _xml_name(cls, v: str) -> str:
        if not _XML_NAME.fullmatch(v) or v.lower().startswith("xml"):
            raise ValueError(f"无效的 XML 元素名 (invalid XML element name) {v!r}")
        return v


class Results(BaseModel):
    """The result file the department writes to `inbox_dir` for each part, with its marker."""

    model_config = ConfigDict(extra="forbid")
    name: NameTemplate = Field(
        default="{{ part_id }}.result.json",
        description="file name template (sees `part_id`, `remote_id` = the part file's name, `remote_stem` = "
        "that name without its extension)",
    )
    format: Format = Field(
        default="json",
        description="json; xml (the root element's content: child elements by name, attributes as @name); "
        "csv (a header row and one record row, each cell by its header)",
    )
    status: Selector = Field(default="status", description="where the status is (JMESPath, or a plain column name)")
    reason: Selector | None = Field(default="reason", description="where the reason is, if the department gives one")
    documents: Selector | None = Field(
        default="documents",
        description="where the result documents are: a list of file names in inbox_dir, or of "
        "{name, file, media_type} objects",
    )

    @field_validator("name")
    @classmethod
    def _per_part(cls, v: str) -> str:
        return _naming(v, ("part_id", "remote_id", "remote_stem"), "part_id")


def _naming(template: str, keys: tuple[str, ...], shown: str) -> str:
    """A name must tell parts apart: two parts writing one file name would make the second look
    delivered (its marker is there) — a false success — or read another part's answer."""
    if not any(key in expression for expression in expressions(template) for key in keys):
        raise ValueError(
            f"文件名模板 {template!r} 须含 {{{{ {shown} }}}}，每个办件一个文件 (a name template must use "
            f"{shown}: one file per part, never shared)"
        )
    return template


class SftpMaterials(MaterialDelivery):
    @field_validator("mode")
    @classmethod
    def _carried(cls, v: str) -> str:
        if v == "multipart":
            raise ValueError("sftp 连接不支持 multipart 模式 (multipart is for rest: use files, inline or pull)")
        return v


class SftpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    auth: Auth = Field(description="{private_key: file:/path, passphrase: ${ENV}} or {password: ${ENV}}")
    known_hosts: FilePath | None = Field(default=None, description="known_hosts file naming the server's key")
    host_key_fingerprint: str | None = Field(
        default=None,
        pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$",
        description="the server's key as `ssh-keygen -lf` prints it, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
    )
    outbox_dir: str = Field(
        min_length=1,
        description="remote directory the hub uploads parts to: an SFTP path; a relative one is from the "
        "login directory (the account's home, or its chroot)",
    )
    inbox_dir: str = Field(
        min_length=1, description="remote directory the department writes results (or batches) to; as outbox_dir"
    )
    encoding: Literal["utf-8", "gb18030"] = Field(
        default="utf-8", description="of the files' contents (names are UTF-8, as SFTP sends them)"
    )
    connect_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="name lookup, TCP connect, SSH handshake, login and opening SFTP, in total",
    )
    timeout_seconds: float = Field(default=30, gt=0, description="per SFTP operation")
    max_call_seconds: float = Field(
        default=240,
        gt=0,
        le=3600,
        description="one submit in total — name lookup, connect, SSH handshake, login and every file of the "
        "part — or one poll (every result): a server that answers but slowly is cut off. A submit's "
        "longest is this plus 5 s (CUT_SECONDS), which the hub keeps well below its dispatch lease "
        "(hub.yaml dispatch_lease_seconds, 300 s: the default 240 fits); raise the lease to go higher",
    )
    max_poll_bytes: int = Field(
        default=256 * 2**20,
        ge=MIN_POLL_BYTES,
        description="bytes one poll reads (result files and their documents, held in memory until sync "
        "applies them); past it the remaining results are left on the server for the next sync. At "
        "least 65 MiB: one result with all its documents always fits",
    )
    marker_suffix: str = Field(default=".ok", pattern=r"^\.[A-Za-z0-9_-]+$")
    materials: SftpMaterials = Field(default_factory=SftpMaterials)
    outgoing: Outgoing = Field(default_factory=Outgoing)
    results: Results = Field(default_factory=Results)
    status_map: StatusMap = Field(
        default_factory=dict,
        description="the department's status words -> the hub's (received, in_review, approved, denied, "
        "supplement_requested); empty: the department writes the hub's words",
    )

    @model_validator(mode="after")
    def _host_key_pinned(self) -> SftpSpec:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "须且只须设置 known_hosts 或 host_key_fingerprint 之一以固定主机密钥 "
                "(pin the host key with exactly one of known_hosts or host_key_fingerprint)"
            )
        return self
