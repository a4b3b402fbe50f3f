"""OpenID Connect sign-in for residents (网办): the `oidc` identity provider type, one instance per
province's unified identity service (浙里办, 随申办, …) configured under `identity_providers:` in
hub.yaml (docs/online.md). A built-in plugin registered through its entry point like a third
party's; the core names no provider.

Modules: `config` (the type's settings: issuer, client, claim names, bounds), `fetch` (bounded
HTTP), `tokens` (the ID token's checks with pyjwt), `provider` (discovery, the authorization URL,
the code exchange). This module holds only the hook implementation."""

from __future__ import annotations

from hub.hookspecs import hookimpl
from plugins.oidc.provider import OidcProvider


@hookimpl
def register_identity_providers() -> list[type]:
    return [OidcProvider]
