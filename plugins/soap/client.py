"""The zeep Client of a `soap` connection: the WSDL parsed once per configuration and shared,
hardened XML parsing, WS-Security (UsernameToken, X.509 signature), a transport that logs nothing."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import requests
from zeep import Client, Settings, Transport
from zeep.wsse.compose import Compose
from zeep.wsse.signature import Signature, verify_envelope
from zeep.wsse.username import UsernameToken

from hub.connectors import DeliveryError
from plugins.soap.spec import SoapSpec, X509Signature, _require_tls

# zeep's transport logs every envelope at DEBUG — the UsernameToken password (when digest is
# off) and residents' data with it. Connections get a logger that is never enabled.
_SILENT = logging.Logger("plugins.soap.transport", level=logging.CRITICAL + 1)


class _Signature(Signature):
    """zeep's Signature checks responses against the *client's own* certificate; a department
    signs with its own, so verify with `server_cert_file`, or not at all when none is given."""

    def __init__(self, spec: X509Signature):
        password = spec.key_password.get_secret_value() if spec.key_password else None
        super().__init__(str(spec.key_file), str(spec.cert_file), password)
        self._server_cert = str(spec.server_cert_file) if spec.server_cert_file else None

    def verify(self, envelope):
        if self._server_cert:
            verify_envelope(envelope, self._server_cert)
        return envelope


class AnswerTooLarge(Exception):
    """An answer (WSDL, schema or SOAP response) over the connection's max_answer_bytes."""


def _bounded(limit: int) -> Callable[..., requests.Response]:
    """A requests response hook reading every answer in full, but no more than `limit` bytes
    (decoded: a gzip body counts unpacked) — zeep would otherwise read whatever a server sends.
    requests runs the hook before it reads the body itself; neither requests nor zeep has a size
    limit, and `_content` is where requests keeps a body read (zeep's AsyncTransport sets it too)."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        body = response.raw.read(limit + 1, decode_content=True)
        if len(body) > limit:
            response.close()
            raise AnswerTooLarge(f"answer larger than max_answer_bytes ({limit})")
        response._content = body
        response._content_consumed = True  # as requests' own `content` leaves it: iter_content reuses the body
        return response

    return hook


# One parsed WSDL per connection configuration, shared by every connector made from it.
_CLIENTS: dict[str, Client] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(name: str, spec: SoapSpec) -> Client:
    key = hashlib.sha256(
        f"{name}\0{spec.model_dump_json()}\0{spec.wsse.password.get_secret_value() if spec.wsse else ''}".encode()
    ).hexdigest()
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            session = requests.Session()
            session.verify = str(spec.ca_file) if spec.ca_file else True
            # Department traffic goes where the connection says, not through whatever proxy or
            # .netrc the environment holds (and reading those on every call costs ~20% here).
            session.trust_env = False
            session.hooks["response"].append(_bounded(spec.max_answer_bytes))
            transport = Transport(
                session=session, timeout=spec.connect_timeout_seconds, operation_timeout=spec.timeout_seconds
            )
            transport.logger = _SILENT
            settings = Settings(
                strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
            wsse: list[Any] = []
            if spec.wsse:
                password = spec.wsse.password.get_secret_value()
                wsse.append(UsernameToken(spec.wsse.username, password, use_digest=spec.wsse.digest))
            if spec.signature:
                wsse.append(_Signature(spec.signature))
            # zeep verifies responses only through a single object: Compose the tokens
            client = Client(
                str(spec.wsdl), transport=transport, settings=settings, wsse=Compose(wsse) if wsse else None
            )
            # the WSDL names where requests go: the same TLS rule holds for that address
            for service in client.wsdl.services.values():
                for port in service.ports.values():
                    try:
                        _require_tls(port.binding_options.get("address", ""), "WSDL service address")
                    except ValueError as exc:
                        raise DeliveryError(f"{name}: {exc}", retryable=False) from None
            _CLIENTS[key] = client
        return _CLIENTS[key]
