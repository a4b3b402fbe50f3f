"""OpenID Connect sign-in (plugins/oidc) against the sandbox identity service on loopback: the ID
token's checks (bad signature, wrong aud/iss, expired, wrong nonce, alg none or HS256 → refused),
PKCE and single-use codes at the token endpoint, claim names configured per province, the hub's
ID rule on what a provider vouches for, and providers that stop only themselves when broken."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hub import identity
from hub.identity import IdentityRefused
from hub.plugins import PluginHost
from hub.settings import IdentityProviderSettings
from plugins.oidc.config import OidcConfig
from plugins.oidc.provider import OidcProvider
from plugins.oidc.tokens import verify_id_token
from plugins.sandbox.oidc_provider import PASSWORD, SandboxIdentityProvider
from tests.support.oidc_plugin import oidc_entry_point

CLIENT = "tongban-hub"
REDIRECT = "http://127.0.0.1:9/my/callback"  # never fetched: the test reads the redirect itself
TODAY = date(2026, 9, 21)


@pytest.fixture(scope="module")
def idp() -> Iterator[SandboxIdentityProvider]:
    server = SandboxIdentityProvider(id_claim="idcard").start()
    yield server
    server.stop()


def provider(idp: SandboxIdentityProvider, **config) -> OidcProvider:
    cfg = {"issuer": idp.issuer, "client_id": CLIENT, **config}
    return OidcProvider("zlb", OidcConfig.model_validate(cfg))


def sign_in(
    idp: SandboxIdentityProvider, p: OidcProvider, who: str = "chenzhiqiang"
) -> tuple[str, identity.LoginState]:
    """The browser's part, by hand: the authorization URL, the sandbox page's form, the code."""
    login = identity.new_login("zlb", __import__("datetime").datetime.now())
    url = p.authorization_url(
        state=login.state, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["code_challenge"] == identity.pkce_challenge(login.code_verifier)
    assert params["code_challenge_method"] == "S256" and params["nonce"] == login.nonce
    answer = httpx.post(f"{idp.issuer}/authorize", data=params | {"resident": who, "password": PASSWORD})
    assert answer.status_code == 302, answer.text
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == [login.state]
    return back["code"][0], login


def check(idp: SandboxIdentityProvider, token: str, **kw) -> dict:
    args = {
        "issuer": idp.issuer,
        "client_id": CLIENT,
        "nonce": "n-1",
        "algorithms": ["RS256", "ES256"],
        "now": time.time(),
    }
    return verify_id_token(token, idp.jwks(), **(args | kw))


def test_a_good_id_token_passes(idp):
    claims = check(idp, idp.id_token(idp.resident("linapo"), CLIENT, "n-1"))
    assert claims["name"] == "林阿婆" and claims["aud"] == CLIENT


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda idp, r: idp.id_token(r, "another-client", "n-1"), "wrong audience"),
        (lambda idp, r: idp.id_token(r, CLIENT, "n-1", iss="http://127.0.0.1:1"), "wrong issuer"),
        (lambda idp, r: idp.id_token(r, CLIENT, "n-1", exp=int(time.time()) - 3600), "expired"),
        (lambda idp, r: idp.id_token(r, CLIENT, "n-2"), "wrong nonce"),
        (lambda idp, r: idp.id_token(r, CLIENT, None), "claim nonce missing"),
        (
            lambda idp, r: idp.id_token(r, CLIENT, "n-1", iat=int(time.time()) - 7200, exp=int(time.time()) + 60),
            "too long ago",
        ),
        (lambda idp, r: idp.id_token(r, CLIENT, "n-1", aud=[CLIENT, "other"]), "authorized party"),
    ],
)
def test_id_token_claims_are_checked(idp, make, why):
    with pytest.raises(IdentityRefused) as refused:
        check(idp, make(idp, idp.resident("linapo")))
    assert why in refused.value.reason.en
    assert refused.value.reason.zh == "身份认证凭证校验失败，请重新登录"


def test_bad_signature_none_and_hmac_are_refused(idp):
    r = idp.resident("linapo")
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "sub": "x",
        "aud": CLIENT,
        "iat": now,
        "exp": now + 60,
        "nonce": "n-1",
        "idcard": r.id_number,
    }
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS256", headers={"kid": idp.kid})  # the right kid, the wrong key
    with pytest.raises(IdentityRefused, match="bad signature"):
        check(idp, forged)
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(IdentityRefused, match="'none' not allowed"):
        check(idp, unsigned)
    hmac_signed = jwt.encode(claims, "a-shared-secret-long-enough-for-hs256!", algorithm="HS256")
    with pytest.raises(IdentityRefused, match="'HS256' not allowed"):
        check(idp, hmac_signed)
    tampered = idp.id_token(r, CLIENT, "n-1").rsplit(".", 1)[0] + "." + "A" * 342
    with pytest.raises(IdentityRefused):
        check(idp, tampered)


def test_code_flow_with_pkce_and_configured_claim_names(idp):
    p = provider(idp, claims={"id_number": ["cert_no", "idcard"], "name": ["name"], "phone": ["phone_number"]})
    code, login = sign_in(idp, p)
    who = p.complete(
        code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY
    )
    assert (who.name, who.id_number, who.phone) == ("陈志强", idp.resident("chenzhiqiang").id_number, "13705770102")
    # the code is single use: a second exchange (a replayed callback) is refused by the provider
    with pytest.raises(IdentityRefused) as again:
        p.complete(code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY)
    assert again.value.error.field == "code"


def test_pkce_verifier_must_match(idp):
    p = provider(idp)
    code, login = sign_in(idp, p)
    answer = httpx.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT,
            "code_verifier": "x" * 43,
        },
    )
    assert answer.status_code == 400 and answer.json()["error_description"] == "PKCE verification failed"
    # and the code is spent with the failed attempt: the right verifier afterwards gets nothing
    with pytest.raises(IdentityRefused):
        p.complete(code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY)


def test_an_authorization_request_without_pkce_is_refused(idp):
    query = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "scope": "openid", "state": "s"}
    assert httpx.get(f"{idp.issuer}/authorize", params=query).status_code == 400
    page = httpx.get(
        f"{idp.issuer}/authorize", params=query | {"code_challenge": "c" * 43, "code_challenge_method": "S256"}
    )
    assert page.status_code == 200 and "统一身份认证" in page.text


def test_wrong_password_gets_no_code(idp):
    p = provider(idp)
    url = p.authorization_url(state="s", nonce="n", code_verifier="v" * 43, redirect_uri=REDIRECT)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = httpx.post(f"{idp.issuer}/authorize", data=params | {"resident": "linapo", "password": "000000"})
    assert answer.status_code == 200 and "用户名或密码错误" in answer.text and "location" not in answer.headers


def test_missing_or_bad_id_claim_is_refused(idp):
    # this province's service names it `idcard`; a configuration that looks only for id_number finds none
    p = provider(idp, claims={"id_number": ["id_number"]})
    code, login = sign_in(idp, p)
    with pytest.raises(IdentityRefused) as none:
        p.complete(code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY)
    assert none.value.error.field == "id_number" and "未返回身份证号" in none.value.reason.zh
    p = provider(idp)
    code, login = sign_in(idp, p, "badid")
    with pytest.raises(IdentityRefused) as bad:
        p.complete(code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY)
    assert "校验码" in bad.value.reason.zh
    assert idp.resident("badid").id_number not in str(bad.value)  # refusals never repeat the value


def test_userinfo_fills_claims_the_id_token_lacks(idp):
    p = provider(idp, claims={"id_number": ["idcard"], "name": ["name"], "phone": []}, userinfo=True)
    code, login = sign_in(idp, p, "wangxiaohong")
    who = p.complete(
        code=code, nonce=login.nonce, code_verifier=login.code_verifier, redirect_uri=REDIRECT, today=TODAY
    )
    assert who.name == "王晓红" and who.phone is None


def test_answers_are_bounded(idp):
    p = provider(idp, max_bytes=1024)  # the JWKS of a 2048-bit key is under that; discovery too
    p.metadata()
    tiny = provider(idp, max_bytes=1024)
    tiny.config.__dict__["max_bytes"] = 64
    with pytest.raises(IdentityRefused, match="too large"):
        tiny.metadata()


def test_login_state_cookie_is_signed_and_expires():
    from datetime import datetime, timedelta

    now = datetime(2026, 9, 21, 2)
    login = identity.new_login("zlb", now)
    sealed = identity.seal_login(b"k" * 32, login)
    assert identity.open_login(b"k" * 32, sealed, now) == login
    assert identity.open_login(b"other", sealed, now) is None
    assert identity.open_login(b"k" * 32, sealed, now + timedelta(seconds=identity.LOGIN_SECONDS + 1)) is None
    body, mac = sealed.split(".")
    assert identity.open_login(b"k" * 32, body[:-2] + "AA." + mac, now) is None


def test_providers_stop_only_themselves(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_PLUGINS", "oidc")
    with oidc_entry_point(tmp_path / "site"):
        host = PluginHost.configured(None)
        types = identity.provider_types(host)
        assert types["oidc"] is OidcProvider
        entries = [
            IdentityProviderSettings(
                name="zlb", type="oidc", label="浙里办", config={"issuer": "http://127.0.0.1:1", "client_id": "c"}
            ),
            IdentityProviderSettings(
                name="far", type="oidc", label="外网", config={"issuer": "http://idp.example.com", "client_id": "c"}
            ),
            IdentityProviderSettings(
                name="lit",
                type="oidc",
                label="明文",
                config={"issuer": "https://idp.example.com", "client_id": "c", "client_secret": "hunter2"},
            ),
            IdentityProviderSettings(name="saml", type="saml", label="其他"),
        ]
        made = {e.name: identity._configure(e, types) for e in entries}
    assert made["zlb"].provider is not None
    assert made["far"].provider is None and "https" in (made["far"].problem or "")
    assert made["lit"].provider is None and "hunter2" not in (made["lit"].problem or "")
    assert made["saml"].provider is None and "saml" in (made["saml"].problem or "")


def test_the_identity_rule_is_the_hubs():
    ok = identity.verified("s", "33032919900701013７".replace("７", "7"), " 陈志强 ", "+86 137-0577-0102", today=TODAY)
    assert ok.name == "陈志强" and ok.phone == "13705770102"
    for args, field in [
        (("", "330329199007010137", "陈志强", None), "sub"),
        (("s", None, "陈志强", None), "id_number"),
        (("s", "330329199007010137", "", None), "name"),
        (("s", "330329199007010137", "陈\u202e志强", None), "name"),
        (("s", "330329199007010137", "陈志强", "call me"), "phone"),
    ]:
        with pytest.raises(IdentityRefused) as refused:
            identity.verified(*args, today=TODAY)
        assert refused.value.error.field == field


def test_hub_sandbox_oidc_runs_the_provider_alone(tmp_path):
    import os
    import subprocess
    import sys

    from hub.home import write_home

    home = write_home(tmp_path / "home")
    command = [
        sys.executable,
        "-m",
        "hub",
        "--home",
        str(home),
        "sandbox",
        "oidc",
        "--port",
        "0",
        "--id-claim",
        "cert_no",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = process.stdout.readline()  # blocks until the server says where it listens (or the process ends)
        issuer = re.search(r"(http://127\.0\.0\.1:\d+)", first)
        assert issuer, first + process.stderr.read()
        found = httpx.get(f"{issuer[1]}/.well-known/openid-configuration").json()
        assert found["issuer"] == issuer[1] and found["code_challenge_methods_supported"] == ["S256"]
        assert "陈志强" in process.stdout.readline() + process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()


def test_a_discovery_document_sending_tokens_elsewhere_is_refused(idp, monkeypatch):
    p = provider(idp)
    real = idp.discovery
    monkeypatch.setattr(idp, "discovery", lambda: real() | {"token_endpoint": "http://tokens.example.com/token"})
    with pytest.raises(IdentityRefused, match="token_endpoint is not https"):
        p.metadata()
    monkeypatch.setattr(idp, "discovery", lambda: real() | {"issuer": "http://127.0.0.1:2"})
    with pytest.raises(IdentityRefused, match="another issuer"):
        p.metadata(fresh=True)
