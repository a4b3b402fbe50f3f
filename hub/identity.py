"""Residents' sign-in (网办) through identity providers: the contract a provider type implements,
the providers a hub home configures, and the one rule a vouched-for identity must meet.

Each province runs its own unified identity service (浙里办, 随申办, …), so the core names none:
a plugin returns provider types from the `register_identity_providers` hook (the OpenID Connect
type is the built-in plugin `oidc`), and `identity_providers:` in hub.yaml configures instances
of them, each with its own name, label and `config` (validated by the type's own pydantic model;
secrets as hub.secrets references). A provider that is misconfigured or whose type no allowed
plugin provides stops only itself: the login page lists it as unavailable.

The flow (hub.web.resident_pages): the login route makes a fresh state, nonce and PKCE code
verifier, keeps them in a signed short-lived cookie (`seal_login`), sends the browser to
`authorization_url`; the callback checks the state against the cookie and hands the code to
`complete`, which returns a `VerifiedResident` or raises `IdentityRefused`. The ID number the
provider vouches for is checked here (`verified`) whatever the provider: a bad or missing one is
refused, and no session is opened."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from hub import text
from hub.errors import FieldError, HubError, Reason
from hub.ids import check_id_number

if TYPE_CHECKING:
    from hub.context import Hub
    from hub.plugins import PluginHost
    from hub.settings import IdentityProviderSettings

log = logging.getLogger(__name__)

LOGIN_SECONDS = 600  # a login must come back from the provider within this long


@dataclass(frozen=True)
class VerifiedResident:
    """Who the identity provider vouched for: its subject id, and the person's ID number, name
    and phone as the hub stores them (checked by `verified`)."""

    subject: str
    id_number: str
    name: str
    phone: str | None = None


class IdentityRefused(HubError):
    """The provider did not vouch for a usable identity (refused, a bad token, a bad or missing
    claim). The message is safe to show: it never carries a token or a claim's value."""

    def __init__(self, field: str, zh: str, en: str):
        self.error = FieldError.of(field, zh, en)
        super().__init__(str(self.error))

    @property
    def reason(self) -> Reason:
        return self.error.reason


class IdentityProvider(ABC):
    """A provider type. Subclasses set `type` (the name hub.yaml's `type:` uses) and `Config`
    (a pydantic model of `config:`), and implement the two steps of a login. `complete` does
    blocking I/O (the web calls it in a worker thread) and must bound every answer it reads."""

    type: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def __init__(self, name: str, config: BaseModel):
        self.name = name
        self.config = config

    @abstractmethod
    def authorization_url(self, *, state: str, nonce: str, code_verifier: str, redirect_uri: str) -> str:
        """Where to send the resident's browser to sign in (PKCE: the challenge of `code_verifier`)."""

    @abstractmethod
    def complete(
        self, *, code: str, nonce: str, code_verifier: str, redirect_uri: str, today: date
    ) -> VerifiedResident:
        """The code the provider sent back, exchanged and verified: the resident (see `verified`),
        or IdentityRefused."""


@dataclass(frozen=True)
class Configured:
    """One `identity_providers:` entry as the login page shows it: `provider` None when it
    cannot be used, with `problem` saying why (for ops; the resident sees "暂不可用")."""

    name: str
    label: str
    label_en: str
    provider: IdentityProvider | None
    problem: str | None = None


def provider_types(host: PluginHost) -> dict[str, type[IdentityProvider]]:
    """Provider types the allowed plugins register, by type name; a name registered twice is refused."""
    found: dict[str, type[IdentityProvider]] = {}
    for plugin_name, register in host.each("register_identity_providers"):
        for classes in register():
            for cls in classes or ():
                if not (isinstance(cls, type) and issubclass(cls, IdentityProvider)):
                    raise TypeError(f"plugin {plugin_name}: {cls!r} is not an IdentityProvider")
                if cls.type in found and found[cls.type] is not cls:
                    raise ValueError(f"plugin {plugin_name}: identity provider type {cls.type!r} registered twice")
                found[cls.type] = cls
    return found


def _configure(entry: IdentityProviderSettings, types: dict[str, type[IdentityProvider]]) -> Configured:
    label_en = entry.label_en or entry.name
    cls = types.get(entry.type)
    if cls is None:
        problem = (
            f"没有已启用的插件提供身份认证类型 {entry.type} (no allowed plugin provides identity type {entry.type})"
        )
        return Configured(entry.name, entry.label, label_en, None, problem)
    try:
        config = cls.Config.model_validate(entry.config)
    except ValidationError as exc:
        # the messages name fields, never values (a secret's value must not reach a log)
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        return Configured(entry.name, entry.label, label_en, None, f"配置有误 (invalid config): {where}")
    return Configured(entry.name, entry.label, label_en, cls(entry.name, config))


def configured(hub: Hub) -> dict[str, Configured]:
    """The hub home's identity providers, by name, in hub.yaml's order, made once per opened hub
    (kept in `hub.extensions`): a provider keeps its discovery document and keys between logins
    instead of fetching them for every page. Each problem is logged once; a broken entry stops
    only itself."""
    if (found := hub.extensions.get(_KEY)) is not None:
        return found
    types = provider_types(hub.plugins)
    found = {}
    for entry in hub.settings.identity_providers:
        found[entry.name] = c = _configure(entry, types)
        if c.problem:
            log.warning("identity provider %s unavailable: %s", entry.name, c.problem)
    hub.extensions[_KEY] = found
    return found


_KEY = "identity.providers"


# ---------------------------------------------------------------- the one rule for an identity


def verified(subject: str, id_number: Any, name: Any, phone: Any, *, today: date) -> VerifiedResident:
    """The identity a provider vouched for, under the hub's rules (the same as at any desk): an
    18-character ID number with a valid check digit (GB 11643, 全角 folded), a one-line name, a
    phone of digits if given. Refusals name the claim but never repeat its value."""
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise IdentityRefused("sub", "身份认证未返回用户标识", "the provider sent no subject")
    if not isinstance(id_number, str) or not id_number.strip():
        raise IdentityRefused("id_number", "身份认证未返回身份证号，无法办理网上业务", "the provider sent no ID number")
    folded = text.fold_code(id_number).strip().upper()
    if reason := check_id_number(folded, today=today):
        raise IdentityRefused(
            "id_number",
            f"身份认证返回的身份证号无效：{reason.zh}",
            f"the ID number the provider sent is not valid: {reason.en}",
        )
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100 or text.problem(name.strip()):
        raise IdentityRefused("name", "身份认证未返回有效姓名", "the provider sent no usable name")
    shown_phone: str | None = None
    if phone not in (None, ""):
        digits = text.fold_code(str(phone)).replace("+86", "").replace("-", "").replace(" ", "")
        if not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 20):
            raise IdentityRefused(
                "phone", "身份认证返回的手机号格式有误", "the phone the provider sent is not a number"
            )
        shown_phone = digits
    return VerifiedResident(subject.strip(), folded, name.strip(), shown_phone)


# ---------------------------------------------------------------- PKCE, state and nonce


def new_secret() -> str:
    """A state, nonce or code verifier: 256 random bits, URL-safe (a PKCE verifier of 43 chars)."""
    return secrets.token_urlsafe(32)


def pkce_challenge(code_verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class LoginState:
    """What a login in progress must find again at the callback: which provider, the state the
    provider must send back, the nonce the ID token must carry, the PKCE verifier, where to go."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    expires: int  # unix seconds
    next: str = "/my"


def _mac(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, b"resident-login:" + body, hashlib.sha256).hexdigest()


def seal_login(secret: bytes, login: LoginState) -> str:
    """The login state as a cookie value: JSON, base64url, and an HMAC with the hub's secret (the
    browser carries it; it cannot change it or make one up)."""
    body = base64.urlsafe_b64encode(json.dumps(login.__dict__, separators=(",", ":")).encode()).decode()
    return f"{body}.{_mac(secret, body.encode())}"


def open_login(secret: bytes, value: str, now: datetime) -> LoginState | None:
    """The login state from its cookie, or None when it is missing, forged or expired."""
    body, _, mac = (value or "").partition(".")
    if not body or not hmac.compare_digest(mac, _mac(secret, body.encode())):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body.encode()))
        login = LoginState(**data)
    except (ValueError, TypeError):
        return None
    return login if login.expires > now.timestamp() else None


def new_login(provider: str, now: datetime, next_url: str = "/my") -> LoginState:
    return LoginState(
        provider, new_secret(), new_secret(), new_secret(), int(now.timestamp()) + LOGIN_SECONDS, next_url
    )
