"""The hub's `sftp` connector against the sandbox 社保 department (plugins.sandbox.sftp_department):
paramiko's server side on loopback, no OpenSSH needed. Connectors are built the way the hub
builds them (a YAML file → Connection.make)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
import yaml

from hub.connection_config import load_connections
from hub.connectors import Connector, DeliveryError, MaterialRef, PartMessage, Receipt
from hub.materials import MaterialStore
from hub.outgoing_materials import OutgoingMaterials
from plugins.sandbox.sftp_department import SftpDepartment, load_or_create_host_key, new_host_key
from plugins.sftp.client import _SFTPClient
from plugins.sftp.connector import SftpConnector

TYPES: dict[str, type[Connector]] = {"sftp": SftpConnector}
PASSWORD = "sandbox-password-1"

Make = Callable[..., SftpConnector]


@pytest.fixture
def client_key_file(tmp_path: Path) -> Path:
    """The hub's private key (OpenSSH form), as ops would mount it."""
    return tmp_path / "keys" / "hub_ed25519"


@pytest.fixture
def dept(tmp_path: Path, client_key_file: Path) -> Iterator[SftpDepartment]:
    client_key = load_or_create_host_key(client_key_file)  # any Ed25519 key file will do
    department = SftpDepartment(tmp_path / "shebao", password=PASSWORD, authorized_key=client_key).start()
    yield department
    department.stop()


def _load(tmp_path: Path, config: dict[str, object]) -> SftpConnector:
    folder = tmp_path / "connections"
    folder.mkdir(exist_ok=True)
    # JSON values are valid YAML: paths, fingerprints and nested maps need no quoting care
    lines = ["type: sftp", "config:"] + [f"  {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in config.items()]
    (folder / "shebao-sftp.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    connections, problems = load_connections(folder, TYPES)
    assert problems == []
    connector = connections["shebao-sftp"].make(TYPES)
    assert isinstance(connector, SftpConnector)
    return connector


@pytest.fixture
def make(tmp_path: Path, dept: SftpDepartment, client_key_file: Path) -> Iterator[Make]:
    """Connectors to `dept`: key auth from a file: reference, host key pinned by fingerprint."""
    made: list[SftpConnector] = []

    def build(**overrides: object) -> SftpConnector:
        config: dict[str, object] = {
            "host": dept.host,
            "port": dept.port,
            "username": "hub",
            "auth": {"private_key": f"file:{client_key_file}"},
            "host_key_fingerprint": dept.host_key_fingerprint,
            "outbox_dir": dept.outbox_dir,
            "inbox_dir": dept.inbox_dir,
            "connect_timeout_seconds": 3,
            "timeout_seconds": 3,
        }
        config.update(overrides)
        made.append(_load(tmp_path, {k: v for k, v in config.items() if v is not None}))
        return made[-1]

    yield build
    for connector in made:
        connector.close()


def part(i: int) -> PartMessage:
    return PartMessage.model_validate(
        {
            "part_id": f"00000000-0000-0000-0000-{i:012d}",
            "application_number": f"330329-20261122-{i:05d}",
            "item_code": "GG00402001",
            "item_title": "城乡居民基本养老保险参保登记",
            "department": "ts-rsj",
            "channel": "bank",
            "desk": "bank-xiahong",
            "collecting_division": "330329",
            "deciding_division": "330329",
            "applicant_type": "person",
            "applicant_name": "林阿婆",
            "applicant_id": "330329195003150214",
            "form": {"contact_phone": "13905770001"},
        }
    )


def raw_sftp(dept: SftpDepartment, password: str = PASSWORD) -> _SFTPClient:
    """A plain paramiko client (the connector's subclass only remembers the server's extensions),
    not the connector: it sends whatever path a test gives it."""
    transport = paramiko.Transport((dept.host, dept.port))
    transport.connect(hostkey=dept.host_key, username="hub", password=password)
    sftp = _SFTPClient.from_transport(transport)
    assert sftp is not None
    return sftp


# ---------------------------------------------------------------------- host keys and credentials


def test_check_passes_with_the_pinned_fingerprint_or_known_hosts(tmp_path, dept, make):
    assert make().check().ok
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(dept.known_hosts_line + "\n", encoding="utf-8")
    assert make(host_key_fingerprint=None, known_hosts=str(known_hosts)).check().ok


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_fingerprint_is_the_one_ssh_keygen_prints(tmp_path, dept):
    public = tmp_path / "host.pub"
    public.write_text(f"{dept.host_key.get_name()} {dept.host_key.get_base64()}\n", encoding="utf-8")
    listed = subprocess.run(["ssh-keygen", "-lf", str(public)], check=True, capture_output=True, text=True)
    assert listed.stdout.split()[1] == dept.host_key_fingerprint


def test_a_wrong_fingerprint_is_refused(dept, make):
    connector = make(host_key_fingerprint=new_host_key().fingerprint)
    result = connector.check()
    assert not result.ok and "host key mismatch" in result.message
    assert dept.host_key_fingerprint in result.message  # names the key the server offered
    with pytest.raises(DeliveryError) as refused:
        connector.submit(part(1))
    assert not refused.value.retryable
    assert not dept.received


def test_password_auth_and_a_wrong_password(make, monkeypatch):
    monkeypatch.setenv("HUB_TEST_SHEBAO_PASSWORD", PASSWORD)
    assert make(auth={"password": "${HUB_TEST_SHEBAO_PASSWORD}"}).check().ok
    monkeypatch.setenv("HUB_TEST_SHEBAO_PASSWORD", "not-the-password")
    wrong = make(auth={"password": "${HUB_TEST_SHEBAO_PASSWORD}"}).check()
    assert not wrong.ok and "authentication failed" in wrong.message
    assert "not-the-password" not in wrong.message


# ---------------------------------------------------------------------- the exchange


def test_submit_writes_the_part_once(dept, make):
    connector, p = make(), part(1)
    first = connector.submit(p)
    assert first.remote_id == f"{p.part_id}.json"
    assert dept.part(p.part_id)["applicant_name"] == "林阿婆"
    assert dept.received == {p.part_id: 1}
    again = connector.submit(p)  # a replay: the marker exists, nothing is written again
    assert again.remote_id == first.remote_id and again.received_at == first.received_at
    assert dept.received == {p.part_id: 1}
    assert sorted(path.name for path in dept.outbox_path.iterdir()) == [f"{p.part_id}.json", f"{p.part_id}.json.ok"]


def test_an_interrupted_upload_is_replaced_by_posix_rename(dept, make):
    p = part(2)
    (dept.outbox_path / f"{p.part_id}.json").write_text("half a fi", encoding="utf-8")  # no marker
    make().submit(p)
    assert dept.part(p.part_id)["part_id"] == p.part_id
    assert dept.received == {p.part_id: 1}


def test_concurrent_submits_each_on_their_own_session(dept, make):
    connector = make()
    parts = [part(i) for i in range(10, 18)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(connector.submit, parts))
    assert dept.received == {p.part_id: 1 for p in parts}


def test_decide_after_zero_approves_with_the_result_pdf(dept, make):
    dept.decide_after = 0
    connector, p = make(), part(3)
    receipt = connector.submit(p)
    [update] = connector.poll([receipt])
    assert (update.part_id, update.status, update.reason) == (p.part_id, "approved", None)
    [document] = update.documents
    assert document.media_type == "application/pdf" and document.name == "社保办理结果.pdf"
    assert document.content.startswith(b"%PDF-") and p.part_id.encode() in document.content


def test_decide_by_hand_denied_with_reason(dept, make):
    connector, p = make(), part(4)
    receipt = connector.submit(p)
    assert connector.poll([receipt]) == []  # undecided: no result file yet
    dept.decide(p.part_id, "denied", "缴费年限不足")
    [update] = connector.poll([receipt])
    assert (update.status, update.reason, update.documents) == ("denied", "缴费年限不足", [])
    with pytest.raises(KeyError):
        dept.decide(part(5).part_id, "approved")  # never received
    assert connector.poll([Receipt(part_id=part(5).part_id, remote_id="x")]) == []


# ---------------------------------------------------------------------- the jail


def test_paths_leading_out_of_the_root_are_refused(tmp_path, dept):
    (tmp_path / "secret.txt").write_text("outside", encoding="utf-8")
    (dept.root / "link").symlink_to(tmp_path)  # a symlink inside the root pointing out of it
    sftp = raw_sftp(dept)
    try:
        for path in ("../secret.txt", "/../secret.txt", "to_shebao/../../secret.txt", "link/secret.txt"):
            with pytest.raises(PermissionError):
                sftp.open(path).read()
            with pytest.raises(PermissionError):
                sftp.stat(path)
        for folder in ("..", "/..", "link", "link/"):
            with pytest.raises(PermissionError):
                sftp.listdir(folder)
        for target in ("../planted.txt", "link/planted.txt"):
            with pytest.raises(PermissionError):
                sftp.open(target, "wb").close()
        with sftp.open("to_shebao/inside.txt", "wb") as file:
            file.write(b"x")
        with pytest.raises(PermissionError):
            sftp.rename("to_shebao/inside.txt", "../moved.txt")
        with pytest.raises(PermissionError):
            sftp.posix_rename("to_shebao/inside.txt", "link/moved.txt")
        with pytest.raises(PermissionError):
            sftp.remove("link/secret.txt")
        with pytest.raises(PermissionError):
            sftp.mkdir("../made")
        with pytest.raises(OSError):
            sftp.symlink("/etc", "etc")  # no new links
        assert not {"planted.txt", "moved.txt", "made"} & {p.name for p in tmp_path.iterdir()}
        assert (tmp_path / "secret.txt").read_text(encoding="utf-8") == "outside"
        # inside, everything works, and "/.." is the root
        assert sftp.normalize("/..") == "/" and sftp.normalize("to_shebao/..") == "/"
        assert {"to_shebao", "from_shebao", "link"} <= set(sftp.listdir("/"))
        sftp.lstat("link")  # the link itself is inside
        sftp.mkdir("from_shebao/done")
        sftp.rename("to_shebao/inside.txt", "from_shebao/done/inside.txt")
        assert sftp.open("from_shebao/done/inside.txt").read() == b"x"
        sftp.remove("from_shebao/done/inside.txt")
        sftp.rmdir("from_shebao/done")
    finally:
        sftp.close()
        sftp.get_channel().get_transport().close()


def test_a_plain_rename_never_replaces_posix_rename_is_announced_and_does(dept):
    sftp = raw_sftp(dept)
    try:
        assert "posix-rename@openssh.com" in sftp.extensions  # so the connector uses it
        for name in ("a", "b"):
            with sftp.open(f"to_shebao/{name}", "wb") as file:
                file.write(name.encode())
        with pytest.raises(OSError):
            sftp.rename("to_shebao/a", "to_shebao/b")
        sftp.posix_rename("to_shebao/a", "to_shebao/b")
        assert sftp.open("to_shebao/b").read() == b"a"
    finally:
        sftp.get_channel().get_transport().close()


# ---------------------------------------------------------------------- knobs and stop


def test_down_then_stop_cut_connections(dept, make):
    connector = make()
    assert connector.check().ok
    sftp = raw_sftp(dept)
    dept.down = True
    connector.close()  # no pooled session: the next check connects
    down = connector.check()
    assert not down.ok and "SSH" in down.message
    dept.down = False
    assert connector.check().ok
    dept.stop()
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        sftp.listdir("/")  # an open session is cut
    with pytest.raises(ConnectionRefusedError), socket.create_connection((dept.host, dept.port), timeout=2):
        pass
    stopped = connector.check()
    assert not stopped.ok and "connection failed" in stopped.message


def test_the_sample_connection_sends_the_scans_beside_the_part(dept, make, tmp_path):
    """config/connections/shebao-sftp.yaml takes the files mode: each scan lands beside the part,
    whole, before the marker, under the default name `<part_id>_<n>_<filename>`."""
    sample = yaml.safe_load(
        (Path(__file__).parents[1] / "config/connections/shebao-sftp.yaml").read_text(encoding="utf-8")
    )["config"]
    assert sample["materials"] == {"mode": "files"} and "outgoing" not in sample  # the default preset
    scan = b"%PDF-1.4\n" + bytes(range(256)) * 400
    sha256 = hashlib.sha256(scan).hexdigest()
    store = MaterialStore(tmp_path / "materials", 2**20, ["application/pdf"])
    store.path_of(sha256).parent.mkdir(parents=True)
    store.path_of(sha256).write_bytes(scan)
    connector = make(materials=sample["materials"])
    connector.materials = OutgoingMaterials(store, None, "shebao-sftp")  # type: ignore[arg-type]
    ref = MaterialRef(name="身份证", filename="身份证.pdf", sha256=sha256, media_type="application/pdf", size=len(scan))
    p = part(5).model_copy(update={"materials": [ref]})
    connector.submit(p)
    beside = dept.outbox_path / f"{p.part_id}_1_身份证.pdf"
    assert hashlib.sha256(beside.read_bytes()).hexdigest() == sha256
    assert dept.part(p.part_id)["materials"][0]["file"] == beside.name  # the part names its file
    assert dept.received == {p.part_id: 1}
