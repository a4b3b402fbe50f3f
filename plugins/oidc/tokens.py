"""The ID token's checks (OpenID Connect Core 3.1.3.7), with pyjwt against the provider's JWKS:
an allowed asymmetric algorithm (never `none`, never HMAC), a key of the provider's set, the
signature, `iss`, `aud` (and `azp` with several audiences), `exp` and `iat` (with a little leeway,
and not issued too long ago), and the nonce this login sent. Any failure is a refusal that names
the check and never quotes the token."""

from __future__ import annotations

import hmac
from typing import Any

import jwt

from hub.identity import IdentityRefused


def _refused(en: str) -> IdentityRefused:
    return IdentityRefused("id_token", "身份认证凭证校验失败，请重新登录", f"the ID token was refused: {en}")


def verify_id_token(
    token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: list[str],
    now: float,
    leeway: int = 60,
    max_age: int = 600,
) -> dict[str, Any]:
    """The ID token's claims once every check holds; IdentityRefused otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _refused("not a JWS") from None
    alg = header.get("alg")
    if alg not in algorithms:  # "none", HS256 and anything not configured
        raise _refused(f"algorithm {str(alg)[:16]!r} not allowed")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWTError:
        raise _refused("the provider's key set is unusable") from None
    kid = header.get("kid")
    candidates = [k for k in keys if (kid is None or k.key_id == kid) and k.algorithm_name == alg]
    if not candidates:
        raise _refused("no key of the provider's set matches")
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise _refused("expired") from None
        except jwt.InvalidAudienceError:
            raise _refused("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise _refused("wrong issuer") from None
        except jwt.ImmatureSignatureError:
            raise _refused("issued in the future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"claim {exc.claim} missing") from None
        except jwt.PyJWTError as exc:
            raise _refused(type(exc).__name__) from None
    if claims is None:
        raise _refused("bad signature")
    iat = claims["iat"]
    if not isinstance(iat, (int, float)) or iat > now + leeway:
        raise _refused("issued in the future")
    if iat < now - max_age - leeway:
        raise _refused("issued too long ago")
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise _refused("authorized party is not this hub")
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise _refused("wrong nonce")
    return claims
