"""网上核验 for every kind the sample catalogue names: the sample hub's `verifiers:` send each to
a configured connection — 公安's SOAP system for households and ID cards, the province's data
platform gateway (REST, its own API) for the rest — so in the demo no such material needs paper.
Both run here as the sandbox's real servers on 127.0.0.1."""

from __future__ import annotations

import yaml

from hub.context import Hub
from hub.health import check_verifiers
from hub.web.desk_intake import verify_online
from plugins.sandbox.cli import SAMPLE_HOUSEHOLDS
from plugins.sandbox.data_sharing import SAMPLE_RECORDS, DataSharingGateway
from plugins.sandbox.soap_department import SoapDepartment

TOKEN = "verification-kinds-token"


def _point(home, name: str, **config) -> None:
    path = home / "connections" / f"{name}.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"].update(config)
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")


def _someone_with(kind: str) -> tuple[str, str]:
    if kind in SAMPLE_RECORDS:
        id_number, (name, _) = next(iter(SAMPLE_RECORDS[kind].items()))
        return id_number, name
    id_number, (name, _) = next(iter(SAMPLE_HOUSEHOLDS.items()))
    return id_number, name


def test_every_kind_the_catalogue_verifies_is_answered_online(home, db_url, clock, monkeypatch):
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    gateway = DataSharingGateway(token=TOKEN).start()
    gongan = SoapDepartment(password=TOKEN, households=SAMPLE_HOUSEHOLDS).start()
    try:
        _point(home, "irs-verify", base_url=gateway.url)
        _point(home, "gongan-soap", wsdl=gongan.wsdl_url)
        hub = Hub.open(home, database_url=db_url, clock=clock)
        try:
            assert check_verifiers(hub.settings, hub.catalog).ok
            assert "paper only" not in check_verifiers(hub.settings, hub.catalog).detail
            by_kind = {}
            for item in hub.catalog.items.values():
                for m in item.materials:
                    if m.verify:
                        by_kind.setdefault(m.verify, (item, m.name))
            assert len(by_kind) >= 8
            for kind, (item, material) in sorted(by_kind.items()):
                id_number, name = _someone_with(kind)
                answer = verify_online(hub, item, material, id_number, name)
                assert answer["ok"] is True, (kind, answer)
                assert answer["connection"] == hub.settings.verifiers[kind]
                wrong = verify_online(hub, item, material, id_number, name + "某")
                assert wrong["ok"] is False, kind
        finally:
            hub.close()
    finally:
        gateway.stop()
        gongan.stop()
    assert set(gateway.asked) == {k for k in by_kind if hub.settings.verifiers[k] == "irs-verify"}


def test_a_verifier_naming_no_connection_fails_the_check(home, db_url, clock):
    text = (home / "hub.yaml").read_text(encoding="utf-8")
    (home / "hub.yaml").write_text(text.replace("marriage_record: irs-verify", "marriage_record: mz-rest"), "utf-8")
    hub = Hub.open(home, database_url=db_url, clock=clock)
    try:
        check = check_verifiers(hub.settings, hub.catalog)
        assert not check.ok and "marriage_record -> mz-rest" in check.detail
    finally:
        hub.close()
