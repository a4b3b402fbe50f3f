"""Our side of the exchange: our hub id and the key our messages are signed with."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.context import Hub
from hub.errors import HubError
from hub.partners.keys import load_key, public_key_id


@dataclass(frozen=True)
class Us:
    hub_id: str
    key: Ed25519PrivateKey

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
