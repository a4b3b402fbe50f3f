"""Hub settings: `hub.yaml` in the hub home, overridden by environment variables (HUB_*).

Secrets never live in hub.yaml itself: values may be `${ENV_VAR}` or `file:/path` references,
resolved when read (connection credentials arrive with the connectors)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from hub import yamlfile
from hub.crypto import HashAlgorithm, SignatureAlgorithm
from hub.divisions import division_problem
from hub.errors import ConfigInvalid, HubError

SETTINGS_FILE = "hub.yaml"
SIGNING_KEY_ENV = "HUB_SIGNING_KEY_FILE"  # overrides signing.key_file (a secret mounted apart)
PUBLIC_URL_ENV = "HUB_PUBLIC_URL"  # overrides public_url (one image, several deployments)


def public_url_problem(url: str) -> str | None:
    """Why `url` cannot be the address residents reach the hub at, or None. https only — the
    status link carries its key in the query, and a QR code sends phones to it over the open
    internet — except on loopback (a hub tried on one's own machine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "应为完整网址，如 https://tongban.example.gov.cn (must be an absolute http(s) URL)"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "不应包含查询参数、片段或用户名 (no query, fragment or user info)"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return "须使用 https（仅本机地址可用 http）(must be https except on loopback)"
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class County(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    division: str


class SigningSettings(BaseModel):
    """Remote face-to-face signing (远程面签): recordings, the key evidence is sealed with."""

    model_config = ConfigDict(extra="forbid")
    recordings_dir: str = "recordings"  # relative paths are inside the hub home
    # the key manifests are signed with (PEM; Ed25519 unless crypto.signature says otherwise);
    # HUB_SIGNING_KEY_FILE overrides; made on
    # first use (mode 0600) when missing — production supplies its own and keeps a copy
    key_file: str = "signing-ed25519.pem"
    segment_seconds: float = Field(default=4.0, ge=1, le=60)  # a crash loses at most one segment
    video_bitrate: int = Field(default=800_000, ge=100_000, le=8_000_000)
    retention_years: int = Field(default=10, ge=1, le=100)  # recordings of sealed sessions
    aborted_retention_days: int = Field(default=365, ge=1)  # recordings of aborted sessions
    # RFC 3161 timestamp authority for sealed manifests (None: no timestamp)
    tsa_url: str | None = None
    # local addresses media is offered on (None: every interface but loopback, aioice's choice)
    ice_host_addresses: list[str] | None = None
    otp_attempts: int = Field(default=5, ge=1, le=20)
    idle_minutes: int = Field(default=10, ge=1)  # nobody connected this long: the session ends (aborted)
    max_minutes: int = Field(default=120, ge=5)  # no session runs longer


class ExchangeSettings(BaseModel):
    """Cross-province service (跨省通办) with partner hubs: who we are to them, the key our
    messages are signed with, and how much clock difference and catalogue age we allow."""

    model_config = ConfigDict(extra="forbid")
    # our name as partners know us (the `from` of every message we send); None: no exchange
    hub_id: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{1,31}$")
    name: str | None = None  # shown to partners' staff, e.g. 泰顺县通办枢纽
    # the key messages are signed with (PEM, `hub partners keygen`, of crypto.signature); HUB_EXCHANGE_KEY_FILE overrides
    key_file: str = "exchange-ed25519.pem"
    # a message whose sent_at is further than this from our clock is refused (expired / from the future)
    clock_skew_seconds: int = Field(default=300, ge=5, le=3600)
    # at intake, a partner's item list older than this is fetched again first (if the partner answers)
    catalogue_max_age_seconds: int = Field(default=300, ge=0)
    # how long intake waits for that fetch before going on with the list it has
    catalogue_fetch_seconds: float = Field(default=5.0, gt=0, le=60)
    # a list older than this is not used at all: intake for the partner's items stops until it is synced
    catalogue_stale_days: int = Field(default=7, ge=1)


EXCHANGE_KEY_ENV = "HUB_EXCHANGE_KEY_FILE"


class CryptoSettings(BaseModel):
    """密评 (GB/T 39786): the algorithms the hub writes new hashes and signatures with. What was
    written before names its own algorithm and stays verifiable after a switch (docs/cryptography.md)."""

    model_config = ConfigDict(extra="forbid")
    hash: HashAlgorithm = "sha256"  # or sm3: new event chains, message logs, manifests
    signature: SignatureAlgorithm = "ed25519"  # or sm2, ecdsa-p256, rsa-2048, rsa-3072: new keys


class SealsSettings(BaseModel):
    """Electronic seals (电子印章, docs/seals.md): PAdES B-B, or B-T with an RFC 3161 timestamp."""

    model_config = ConfigDict(extra="forbid")
    # RFC 3161 timestamp authority for sealed PDFs (None: PAdES B-B, no timestamp)
    timestamp_url: str | None = None
    timestamp_timeout: float = Field(default=10.0, gt=0, le=60)  # seconds a TSA has to answer
    # True: a TSA that fails stops the sealing; False: the PDF is sealed B-B and a warning logged
    timestamp_required: bool = False

    @field_validator("timestamp_url")
    @classmethod
    def _timestamp_url(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("应为 http(s) 网址 (must be an http(s) URL)")
        return v


class IdentityProviderSettings(BaseModel):
    """One identity provider residents may sign in with (网办, docs/online.md): `type` names a
    provider type a plugin registers (`oidc`), `config` is that type's own settings (secrets as
    ${ENV} or file: references), checked when the hub opens the provider."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")  # in the login URL: /my/login/NAME
    type: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=60)  # on the login button, e.g. 浙里办
    label_en: str | None = Field(default=None, max_length=60)
    config: dict = Field(default_factory=dict)


class KeyFile(NamedTuple):
    """Where the evidence signing key is, and which setting says so."""

    path: Path
    source: str  # HUB_SIGNING_KEY_FILE or signing.key_file, for messages (never the key itself)
    # set by the operator rather than left at the default: a configured key must exist (a new
    # one would seal evidence with a key nobody holds a copy of); the default is made on first use
    configured: bool


LOCAL_SERVE_URL = "http://127.0.0.1:8000"  # `hub serve`'s default address


class QueueSettings(BaseModel):
    """Appointments and the queue (预约 / 取号 / 叫号, docs/appointments.md)."""

    model_config = ConfigDict(extra="forbid")
    book_days_ahead: int = Field(default=14, ge=1, le=90)  # how far ahead residents may book
    elderly_age: int = Field(default=65, ge=50, le=100)  # 老年人优先: age on the day of the ticket
    no_show_after_recalls: int = Field(default=2, ge=0, le=10)  # recalls before a ticket may be a no-show
    # the 叫号屏: streams one API process serves at most, the heartbeat that keeps proxies from
    # closing an idle stream, how often the broadcaster looks for calls other processes made
    max_display_streams: int = Field(default=200, ge=1, le=10_000)
    heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    poll_seconds: float = Field(default=0.5, gt=0, le=30)
    # an SMS gateway for reminders (POST JSON {ref, phone, text}; `ref` its idempotency key);
    # None: reminders are recorded and shown, not sent. https, or http on loopback (a sandbox)
    sms_url: str | None = None
    sms_timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("sms_url")
    @classmethod
    def _sms_url(cls, v: str | None) -> str | None:
        if v is not None and (problem := public_url_problem(v.split("?")[0])):
            raise ValueError(problem)
        return v


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    county: County
    database_url: str = "sqlite:///hub.db"  # relative SQLite paths are inside the hub home
    # PostgreSQL connections each process keeps open: at least as many as it has threads using the
    # database at once (`web_threads`, the jobs' workers), or requests open and close connections.
    # Several API processes × twice this must stay under the server's max_connections (default 100).
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # worker threads per `hub serve` process for blocking work (database, file writes)
    web_threads: int = Field(default=8, ge=1, le=200)
    timezone: str = "Asia/Shanghai"
    materials_dir: str = "materials"
    max_material_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    allowed_media_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png", "application/ofd"]
    )
    yellow_days: int = Field(default=2, ge=0)  # yellow card when this few working days remain
    # 补正: working days an applicant has to bring what was asked for, unless the item says
    # (`supplement_days` in the catalogue)
    supplement_days: int = Field(default=5, ge=1, le=60)
    # how long a dispatcher holds the deliveries it took; one that dies is replaced after this
    dispatch_lease_seconds: int = Field(default=300, ge=1)
    # entry-point names of the plugins allowed to load (HUB_PLUGINS overrides); None: the built-in ones
    plugins: list[str] | None = None
    # 网上核验: which connection answers each kind of online verification a material names
    verifiers: dict[str, str] = Field(default_factory=dict)
    # 电子证照 at intake: which connection's licence library to look each licence type up in
    # (beside the hub's own library), e.g. {YYZZ: irs-licences}
    licence_sources: dict[str, str] = Field(default_factory=dict)
    # the address residents and departments reach the hub at: every status link and QR code (receipts,
    # notices, messages) and pulled materials' links start with it. HUB_PUBLIC_URL overrides;
    # `public_base_url` is accepted as another name for it. https except on loopback. Unset: the
    # address each request came to, which is wrong behind a proxy — set it in deployments.
    public_url: str | None = Field(default=None, validation_alias=AliasChoices("public_url", "public_base_url"))
    # Redis the API processes share the login throttle through (HUB_REDIS_URL overrides), e.g.
    # redis://redis:6379/1; unset: each process counts its own (one process, the embedded default)
    redis_url: str | None = None
    signing: SigningSettings = Field(default_factory=SigningSettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    crypto: CryptoSettings = Field(default_factory=CryptoSettings)
    seals: SealsSettings = Field(default_factory=SealsSettings)
    # 网办: the identity providers residents sign in with, in the login page's order (docs/online.md)
    identity_providers: list[IdentityProviderSettings] = Field(default_factory=list, max_length=20)
    queue: QueueSettings = Field(default_factory=QueueSettings)  # appointments and the queue (hub.appointments)

    # 好差评: a 不满意 or 非常不满意 rating is promised contact (and its follow-up is due) within
    # this many working days; the status page tells the resident so
    follow_up_workdays: int = Field(default=15, ge=1, le=60)

    home: Path = Path(".")

    @field_validator("identity_providers")
    @classmethod
    def _provider_names(cls, v: list[IdentityProviderSettings]) -> list[IdentityProviderSettings]:
        names = [p.name for p in v]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"身份认证名称重复 (identity provider named twice): {', '.join(twice)}")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if problem := public_url_problem(v):
            raise ValueError(problem)
        return v.rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.home / p

    @property
    def config_dir(self) -> Path:
        return self.home

    @property
    def connections_dir(self) -> Path:
        return self.home / "connections"

    @property
    def calendar_dir(self) -> Path:
        return self.home / "calendar"

    @property
    def signing_key_file(self) -> KeyFile:
        """The evidence signing key: $HUB_SIGNING_KEY_FILE, else `signing.key_file` (inside the hub
        home when relative). Everything that reads, makes, checks or backs up the key asks here."""
        if env := os.environ.get(SIGNING_KEY_ENV):
            return KeyFile(Path(env), SIGNING_KEY_ENV, True)
        default = SigningSettings.model_fields["key_file"].default
        if self.signing.key_file == default and self.crypto.signature != "ed25519" and not self.path(default).exists():
            # a home with no key yet makes one of crypto.signature, named for it; an existing
            # signing-ed25519.pem keeps sealing (old homes and their evidence keep working)
            return KeyFile(self.path(f"signing-{self.crypto.signature}.pem"), "signing.key_file", False)
        return KeyFile(self.path(self.signing.key_file), "signing.key_file", self.signing.key_file != default)

    @property
    def exchange_key_file(self) -> KeyFile:
        """The key messages to partner hubs are signed with: $HUB_EXCHANGE_KEY_FILE, else
        `exchange.key_file` (inside the hub home when relative)."""
        if env := os.environ.get(EXCHANGE_KEY_ENV):
            return KeyFile(Path(env), EXCHANGE_KEY_ENV, True)
        return KeyFile(self.path(self.exchange.key_file), "exchange.key_file", True)

    @property
    def partners_dir(self) -> Path:
        return self.home / "partners"

    @property
    def resolved_redis_url(self) -> str | None:
        """HUB_REDIS_URL over `redis_url`: where API processes share the login throttle."""
        return os.environ.get("HUB_REDIS_URL") or self.redis_url

    @property
    def issued_link_base(self) -> str:
        """The address printed into what the hub seals (QR codes on notices and licences):
        `public_url`, else `hub serve`'s own loopback address (a hub tried on one machine;
        `hub doctor` warns about it on PostgreSQL). Never a request's Host: a link sealed into a
        document outlives the request that happened to issue it."""
        return (self.public_url or LOCAL_SERVE_URL).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        url = os.environ.get("HUB_DATABASE_URL") or self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            url = prefix + str((self.home / url[len(prefix) :]).resolve())
        return url


def find_home(explicit: Path | None = None) -> Path:
    """--home, else $HUB_HOME, else the current directory if it holds hub.yaml."""
    given = explicit or os.environ.get("HUB_HOME")
    if given:
        home = Path(given).expanduser().resolve()
        if not (home / SETTINGS_FILE).is_file():
            raise HubError(f"{home} 不是通办枢纽工作目录，缺少 {SETTINGS_FILE} (not a hub home; run `hub init DIR`)")
        return home
    if (Path.cwd() / SETTINGS_FILE).is_file():
        return Path.cwd()
    raise HubError("未找到工作目录：请用 --home 或 HUB_HOME 指定，或先运行 `hub init DIR` (no hub home found)")


def load_settings(home: Path) -> Settings:
    doc = yamlfile.load(home / SETTINGS_FILE)
    settings = yamlfile.validate(doc, Settings) if not doc.problems else None
    if settings is not None:
        problem = division_problem(settings.county.division)
        if problem:
            doc.problems.append(doc.problem(("county", "division"), problem))
        if env := os.environ.get(PUBLIC_URL_ENV):
            if problem := public_url_problem(env):
                doc.problems.append(doc.problem(("public_url",), f"{PUBLIC_URL_ENV}: {problem}"))
            else:
                settings = settings.model_copy(update={"public_url": env.rstrip("/")})
    if doc.problems or settings is None:
        raise ConfigInvalid(doc.problems)
    return settings.model_copy(update={"home": home})
