"""Our side of the exchange: our hub id and the key our messages are signed with."""

from __future__ import annotations

from dataclasses import dataclass

from hub.context import Hub
from hub.crypto import SigningKey, VerifyKey
from hub.errors import HubError
from hub.partners.keys import load_key, public_key_id, retired_public_keys


@dataclass(frozen=True)
class Us:
    hub_id: str
    key: SigningKey

    @property
    def key_id(self) -> str:
        return public_key_id(self.key)


def us(hub: Hub) -> Us:
    """Our identity, the key read once per opened hub (it never changes while a process runs:
    `hub partners keygen --rotate` takes effect at the next start)."""
    found = hub.extensions.get("exchange.us")
    if found is None:
        hub_id = hub.settings.exchange.hub_id
        if not hub_id:
            raise HubError(
                "hub.yaml 未设置 exchange.hub_id：本枢纽未开通跨省通办 (no exchange.hub_id: the exchange is off)"
            )
        found = hub.extensions["exchange.us"] = Us(hub_id, load_key(hub.settings.exchange_key_file.path))
    return found


def verification_keys(hub: Hub) -> dict[str, list[tuple[str, VerifyKey]]]:
    """Every public key the message log may need, by signer (hub id): each partner's (rotated
    keys included, as its file lists them), ours and the ones we rotated away from."""
    out: dict[str, list[tuple[str, VerifyKey]]] = {}
    for p in hub.partners.by_name.values():
        out.setdefault(p.hub_id, []).extend((k.key_id, k.key) for k in p.spec.keys)
    if hub_id := hub.settings.exchange.hub_id:
        path = hub.settings.exchange_key_file.path
        ours = [load_key(path).public_key()] if path.is_file() else []
        out.setdefault(hub_id, []).extend((public_key_id(k), k) for k in [*ours, *retired_public_keys(path)])
    return out
