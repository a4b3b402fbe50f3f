"""The Airflow DAGs (dags/), in a throwaway AIRFLOW_HOME, run in subprocesses so Airflow's
settings and logging stay out of the test process: the DagBag is clean and every DAG has tags,
docs, retries with backoff and pools; end to end with dag.test(), a bank batch on a real OpenSSH
sshd and an enclave batch over REST go intake → (county acceptance) → dispatch → sandbox 医保 →
status sync, exactly once; the deadline sweep DAG turns an application yellow then red; with a
partner hub configured (跨省通办) the exchange DAGs have a task per partner, and a run succeeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hub import applications as svc
from hub.batches.writer import write_batch
from hub.context import Hub
from hub.storage.tables import Application
from plugins.sandbox.enclave_source import EnclaveSource
from plugins.sandbox.partner_hub import pair, write_partner_home
from plugins.sandbox.rest_department import RestDepartment
from tests.support.intake_samples import HALL_ONLY, files_for, person_id, record
from tests.support.samples import HZ_CLERK, fund_rent, officer
from tests.support.sshd import SshServer, running_sshd

pytest.importorskip("airflow", reason="Airflow is the `airflow` extra (make installs it)")

REPO = Path(__file__).resolve().parents[1]
TOKEN = "dags-test-token"
YBJ = officer("ts-ybj")


def _airflow_env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    env.pop("HUB_HOME", None)
    return env


@pytest.fixture(scope="module")
def _airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`airflow db migrate` once for the module: its SQLite file holds only the schema, the default
    pool and log templates (no path of its home; airflow.cfg, which has them, is not copied)."""
    home = tmp_path_factory.mktemp("airflow-template")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=_airflow_env(home), check=True, capture_output=True
    )
    return home / "airflow.db"


@pytest.fixture
def airflow_env(tmp_path_factory: pytest.TempPathFactory, _airflow_db_template: Path) -> dict[str, str]:
    """A fresh Airflow home and metadata database per test (runs and Asset events start from
    nothing): a copy of the migrated template database; Airflow writes its airflow.cfg itself."""
    home = tmp_path_factory.mktemp("airflow")
    shutil.copyfile(_airflow_db_template, home / "airflow.db")
    return _airflow_env(home)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def world(home: Path, db_url: str, clock, sshd: SshServer, tmp_path: Path, airflow_env, monkeypatch):
    """A hub home whose connections point at sshd (bank drop), the enclave sandbox and the 医保 sandbox."""
    drop = tmp_path / "bank-drop"
    drop.mkdir()
    yibao = RestDepartment(token=TOKEN).start()
    enclave = EnclaveSource(tmp_path / "enclave", token=TOKEN).start()
    (home / "connections" / "bank-xiahong-sftp.yaml").write_text(
        yaml.safe_dump(
            {
                "type": "sftp",
                "intake": {"desks": ["bank-xiahong"], "schedule": "*/10 * * * *"},
                "config": {
                    "host": sshd.host,
                    "port": sshd.port,
                    "username": sshd.user,
                    "auth": {"private_key": f"file:{sshd.client_key}"},
                    "host_key_fingerprint": sshd.host_fingerprint,
                    "inbox_dir": str(drop),
                    "outbox_dir": str(drop / "unused"),
                },
            }
        ),
        encoding="utf-8",
    )
    (home / "connections" / "enclave-hangzhou-rest.yaml").write_text(
        yaml.safe_dump(
            {
                "type": "rest",
                "intake": {"desks": ["enclave-hangzhou"]},
                "config": {"base_url": enclave.url, "auth": {"bearer": "${HUB_SANDBOX_TOKEN}"}, "retries": 0},
            }
        ),
        encoding="utf-8",
    )
    path = home / "connections" / "yibao-rest.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    conf["config"]["base_url"] = yibao.url
    path.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
    env = {**airflow_env, "HUB_HOME": str(home), "HUB_DATABASE_URL": db_url, "HUB_SANDBOX_TOKEN": TOKEN}
    monkeypatch.setenv("HUB_SANDBOX_TOKEN", TOKEN)
    hub = Hub.open(home, database_url=db_url, clock=clock)
    yield {"hub": hub, "env": env, "drop": drop, "yibao": yibao, "enclave": enclave}
    hub.close()
    enclave.stop()
    yibao.stop()


def airflow(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "support" / "airflow_runner.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dagbag_is_clean_and_every_dag_has_tags_docs_retries_and_pools(world, tmp_path: Path):
    # a partner hub (跨省通办): the exchange DAGs exist, one task per partner file
    pair(
        world["hub"].settings.home, "http://127.0.0.1:9", write_partner_home(tmp_path / "fuding"), "http://127.0.0.1:9"
    )
    found = airflow(world["env"], "check")
    assert found["import_errors"] == {}
    dags = found["dags"]
    assert {
        "tongban_intake_bank-xiahong-sftp",
        "tongban_intake_enclave-hangzhou-rest",
        "tongban_dispatch",
        "tongban_sync",
        "tongban_deadlines",
        "tongban_daily_report",
        "tongban_documents",
        "tongban_reminders",
        "tongban_exchange",
        "tongban_exchange_catalogues",
    } <= set(dags)
    for dag_id, dag in dags.items():
        assert dag["tags"] and "tongban" in dag["tags"] and dag["doc_md"], dag_id
        for task_id, t in dag["tasks"].items():
            assert t["retries"] >= 3 and t["exponential"], (dag_id, task_id)
    assert dags["tongban_dispatch"]["tasks"]["dispatch_yibao-rest"]["pool"] == "tongban_yibao-rest"
    assert dags["tongban_sync"]["tasks"]["sync_yibao-rest"]["pool"] == "tongban_yibao-rest"
    intake = dags["tongban_intake_bank-xiahong-sftp"]["tasks"]["ingest"]
    assert intake["outlets"] == ["tongban://intake/bank-xiahong-sftp"]
    assert "Asset" in dags["tongban_dispatch"]["schedule"]  # triggered by the intake Assets (or time)
    assert set(dags["tongban_exchange"]["tasks"]) == {"exchange_fuding"}
    assert set(dags["tongban_exchange_catalogues"]["tasks"]) == {"sync_catalogue_fuding"}
    assert found["parse_seconds"] < 1  # the whole folder (about 0.15 s here)
    assert found["parse_imported"] == []  # neither the hub nor a connector's client at parse time
    # nothing owed to the partner yet: the run sends nothing, and succeeds
    runs = airflow(world["env"], "run", "tongban_exchange")["runs"]
    assert runs == [["tongban_exchange", "success", {"exchange_fuding": "success"}]]


def test_bank_and_enclave_batches_flow_to_the_department_exactly_once(world):
    hub, env, drop, yibao, enclave = (world[k] for k in ("hub", "env", "drop", "yibao", "enclave"))
    bank_records = [
        record(1),
        record(2, applicant={"type": "person", "name": "错号", "id": person_id(2)[:-1] + "0"}),
        record(3),
        record(4, subject=HALL_ONLY),
        record(5),
    ]
    write_batch(
        drop / "XH-001", batch_id="XH-001", desk="bank-xiahong", records=bank_records, files=files_for(bank_records)
    )
    (drop / "XH-001.ok").write_bytes(b"")
    write_batch(
        enclave.root / "HZ-001",
        batch_id="HZ-001",
        desk="enclave-hangzhou",
        records=[record(11, record_id="HZ-1"), record(12, record_id="HZ-2", form={})],
        files=files_for([record(11), record(12)]),
    )
    (enclave.root / "HZ-001.ok").write_bytes(b"")

    done = airflow(env, "run", "tongban_intake_bank-xiahong-sftp", "tongban_intake_enclave-hangzhou-rest")
    runs = done["runs"]
    assert [r[1] for r in runs] == ["success", "success"], runs
    assert done["asset_events"] == {
        "tongban://intake/bank-xiahong-sftp": 1,
        "tongban://intake/enclave-hangzhou-rest": 1,
    }
    report = [json.loads(x) for x in (drop / "errors" / "XH-001.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(e["line"], e["field"]) for e in report} >= {(2, "applicant.id"), (4, "subject")}
    assert {e["line"] for e in json.loads("[" + ",".join(enclave.report("HZ-001").splitlines()) + "]")} == {2}

    with hub.sessions() as s:
        apps = list(s.scalars(select(Application).order_by(Application.source_ref)))
    assert [(a.source_ref, a.state) for a in apps] == [
        ("HZ-1", "pre_reviewed"),
        ("XH-0000001", "pre_reviewed"),
        ("XH-0000003", "pre_reviewed"),
        ("XH-0000005", "pre_reviewed"),
    ]
    for a in apps:  # the county officer accepts (受理) what the desks pre-reviewed
        svc.transition(hub, a.number, "accept", YBJ)
    assert airflow(env, "run", "tongban_dispatch")["runs"][0][1] == "success"
    parts = {svc.read(hub, a.number, YBJ).parts[0].id for a in apps}
    assert dict(yibao.received) == {p: 1 for p in parts}  # exactly the good ones, once each

    for remote_id in list(yibao.parts):
        yibao.decide(remote_id, "approved")
    assert airflow(env, "run", "tongban_sync")["runs"][0][1] == "success"
    assert {svc.read(hub, a.number, YBJ).state for a in apps} == {"decided"}

    # intake again, and the bank sending the same batch a second time: nothing changes
    (drop / "done" / "XH-001").rename(drop / "XH-001")
    (drop / "XH-001.ok").write_bytes(b"")
    done = airflow(
        env, "run", "tongban_intake_bank-xiahong-sftp", "tongban_intake_enclave-hangzhou-rest", "tongban_dispatch"
    )
    runs = done["runs"]
    assert [r[1] for r in runs] == ["success", "success", "success"]
    assert runs[1][2] == {"ingest": "skipped"}  # nothing on the enclave's side: skipped, no Asset event
    assert done["asset_events"] == {
        "tongban://intake/bank-xiahong-sftp": 2,
        "tongban://intake/enclave-hangzhou-rest": 1,
    }
    with hub.sessions() as s:
        assert len(s.scalars(select(Application)).all()) == 4
    assert sum(yibao.received.values()) == 4


def test_deadline_sweep_dag_turns_an_application_yellow_then_red(world, clock):
    hub, env = world["hub"], world["env"]
    clock.set(date(2026, 11, 2))  # Mon; 3 working days → due Thu 5 Nov
    number = svc.transition(hub, svc.create(hub, fund_rent(), HZ_CLERK).number, "accept", officer("ts-gjj")).number
    runs = airflow(
        env,
        "run",
        "tongban_deadlines",
        "2026-11-03T09:00:00+08:00",
        "tongban_deadlines",
        "2026-11-03T10:00:00+08:00",
        "tongban_deadlines",
        "2026-11-06T09:00:00+08:00",
    )["runs"]
    assert [r[1] for r in runs] == ["success"] * 3
    app = svc.read(hub, number, officer("ts-gjj"))
    assert [e.data["level"] for e in app.events if e.action == "warning"] == ["yellow", "red"]
    alerts = (Path(hub.settings.path("reports")) / "alerts.csv").read_text(encoding="utf-8-sig")
    assert f"{number},red," in alerts
