"""A sandbox province identity service (统一身份认证, like 浙里办's) speaking OpenID Connect, on
127.0.0.1: discovery, /authorize (a small Chinese page to pick one of the sample residents and
type the sandbox password; a wrong password is refused there), /token (authorization code, single
use, PKCE S256 checked, redirect URI and client checked), /jwks (an RS256 key made at start), and
/userinfo. Tests, the demo and `hub sandbox oidc` use it over real sockets.

Sample residents are fictional, with valid check digits; one has an ID number with a wrong check
digit, for the hub's refusal page. `id_claim` renames the ID-number claim (每个省的叫法不同)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.ids import id_check_digit

PASSWORD = "123456"  # the sandbox's one password, shown on its page
CODE_SECONDS = 60


def _id(first17: str) -> str:
    return first17 + id_check_digit(first17)


@dataclass(frozen=True)
class SampleResident:
    key: str  # the login name on the sandbox page
    name: str
    id_number: str
    phone: str


def _bad_check_digit(first17: str) -> str:
    good = id_check_digit(first17)
    return first17 + ("0" if good != "0" else "1")


SAMPLE_RESIDENTS = (
    SampleResident("linapo", "林阿婆", _id("33032919500315021"), "13705770101"),
    SampleResident("chenzhiqiang", "陈志强", _id("33032919900701013"), "13705770102"),
    SampleResident("wangxiaohong", "王晓红", _id("33032919880612022"), "13705770103"),
    # the province's record is wrong: the hub must refuse it and open no session
    SampleResident("badid", "测试异常证号", _bad_check_digit("33032919900101123"), "13705770104"),
)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    resident: SampleResident
    expires: float
    used: bool = False


@dataclass
class SandboxIdentityProvider:
    """Start with `start()`, stop with `stop()`; `issuer` is its URL. `clients`: client id ->
    its secret (None: a public client, PKCE only)."""

    clients: dict[str, str | None] = field(default_factory=lambda: {"tongban-hub": None})
    port: int = 0
    id_claim: str = "id_number"
    residents: tuple[SampleResident, ...] = SAMPLE_RESIDENTS
    token_seconds: int = 300

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, SampleResident] = {}
        self._lock = threading.Lock()
        self.logins: list[str] = []  # who signed in (resident keys), for tests
        self.token_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SandboxIdentityProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-oidc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def resident(self, key: str) -> SampleResident:
        return next(r for r in self.residents if r.key == key)

    # ------------------------------------------------------------------ what it serves

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "phone"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def subject_of(self, r: SampleResident) -> str:
        return "zlb-" + hashlib.sha256(r.id_number.encode()).hexdigest()[:20]

    def claims_of(self, r: SampleResident) -> dict[str, Any]:
        return {self.id_claim: r.id_number, "name": r.name, "phone_number": r.phone}

    def id_token(self, r: SampleResident, client_id: str, nonce: str | None, **override: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.subject_of(r),
            "aud": client_id,
            "iat": now,
            "exp": now + self.token_seconds,
            "auth_time": now,
            **({"nonce": nonce} if nonce else {}),
            **self.claims_of(r),
            **override,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def authorize_page(self, params: dict[str, str], error: str | None = None) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in sorted(params.items())
        )
        people = "".join(
            f'<label class="who"><input type="radio" name="resident" value="{r.key}"{" checked" if i == 0 else ""}> '
            f"{html.escape(r.name)}（{r.id_number[:6]}********{r.id_number[-4:]}）</label>"
            for i, r in enumerate(self.residents)
        )
        wrong = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>统一身份认证（沙箱）</title></head><body>"
            "<h1>统一身份认证（沙箱）</h1><p>请选择一位示例居民登录。沙箱密码：123456</p>"
            f'{wrong}<form method="post" action="/authorize">{hidden}<fieldset><legend>示例居民</legend>{people}</fieldset>'
            '<label>密码 <input type="password" name="password" autocomplete="off"></label> '
            '<button type="submit" id="sandbox-login">登录</button></form></body></html>'
        )

    # ------------------------------------------------------------------ the protocol's checks

    def _authorize_problem(self, p: dict[str, str]) -> str | None:
        if p.get("response_type") != "code":
            return "unsupported_response_type"
        if p.get("client_id") not in self.clients:
            return "unauthorized_client"
        uri = urlsplit(p.get("redirect_uri", ""))
        if uri.scheme != "http" or uri.hostname not in ("127.0.0.1", "localhost"):
            return "invalid_redirect_uri"  # sandbox: only pages on this machine
        if "openid" not in p.get("scope", "").split():
            return "invalid_scope"
        if p.get("code_challenge_method") != "S256" or not p.get("code_challenge"):
            return "invalid_request: PKCE S256 required"
        return None

    def _issue_code(self, p: dict[str, str], r: SampleResident) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                p["client_id"], p["redirect_uri"], p["code_challenge"], p.get("nonce"), r, time.time() + CODE_SECONDS
            )
            self.logins.append(r.key)
        return code

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests += 1
            if form.get("grant_type") != "authorization_code":
                return 400, {"error": "unsupported_grant_type"}
            entry = self._codes.get(form.get("code", ""))
            if entry is None or entry.used or entry.expires < time.time():
                return 400, {"error": "invalid_grant", "error_description": "code unknown, used or expired"}
            entry.used = True  # single use, whatever follows
            client = form.get("client_id", "")
            if client != entry.client_id or client not in self.clients:
                return 400, {"error": "invalid_client"}
            secret = self.clients[client]
            if secret is not None and not secrets.compare_digest(form.get("client_secret", ""), secret):
                return 401, {"error": "invalid_client"}
            if form.get("redirect_uri") != entry.redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or not secrets.compare_digest(digest, entry.challenge):
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            access = secrets.token_urlsafe(24)
            self._access[access] = entry.resident
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_seconds,
            "id_token": self.id_token(entry.resident, entry.client_id, entry.nonce),
        }

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else ""
        with self._lock:
            r = self._access.get(token)
        if r is None:
            return 401, {"error": "invalid_token"}
        return 200, {"sub": self.subject_of(r), **self.claims_of(r)}

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read answers, not logs
                pass

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: dict[str, Any]) -> None:
                self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json")

            def _page(self, status: int, text: str) -> None:
                self._send(status, text.encode(), "text/html; charset=utf-8")

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(min(length, 64 * 1024)).decode("utf-8", "replace")
                return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    return self._json(200, idp.discovery())
                if parts.path == "/jwks":
                    return self._json(200, idp.jwks())
                if parts.path == "/userinfo":
                    return self._json(*idp.userinfo(self.headers.get("authorization", "")))
                if parts.path == "/authorize":
                    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    if problem := idp._authorize_problem(params):
                        return self._page(400, f"<p>请求无效：{html.escape(problem)}</p>")
                    return self._page(200, idp.authorize_page(params))
                self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                form = self._form()
                if path == "/token":
                    return self._json(*idp.token(form))
                if path == "/authorize":
                    params = {k: v for k, v in form.items() if k not in ("resident", "password")}
                    if problem := idp._authorize_problem(params):
                        return self._page(400, f"<p>请求无效：{html.escape(problem)}</p>")
                    chosen = next((r for r in idp.residents if r.key == form.get("resident")), None)
                    if chosen is None or not secrets.compare_digest(form.get("password", ""), PASSWORD):
                        return self._page(200, idp.authorize_page(params, "用户名或密码错误，请重新输入。"))
                    code = idp._issue_code(params, chosen)
                    back = {"code": code, **({"state": params["state"]} if "state" in params else {})}
                    return self._send(
                        302, b"", "text/plain", {"location": f"{params['redirect_uri']}?{urlencode(back)}"}
                    )
                self._json(404, {"error": "not_found"})

        return Handler
