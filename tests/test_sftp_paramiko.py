"""Canary for the paramiko internals plugins/sftp/client.py relies on (paramiko has no public API
for the server's SFTP extensions or for several files in flight on one channel). If a paramiko
upgrade renames or reshapes one of them, these fail by name, before the connector misbehaves."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from paramiko.sftp import BaseSFTP
from paramiko.sftp_attr import SFTPAttributes

from plugins.sftp import client
from tests.support.sshd import SshServer, running_sshd


@pytest.mark.parametrize(
    ("owner", "method", "parameters"),
    [
        (BaseSFTP, "_read_packet", ["self"]),
        (paramiko.SFTPClient, "_request", ["self", "t", "args"]),
        (paramiko.SFTPClient, "_async_request", ["self", "fileobj", "t", "args"]),
        (paramiko.SFTPClient, "_read_response", ["self", "waitfor"]),
        (paramiko.SFTPClient, "_convert_status", ["self", "msg"]),
        (SFTPAttributes, "_from_msg", ["msg", "filename", "longname"]),  # list_names reads past a name's attributes
    ],
)
def test_private_methods_we_call_keep_their_shape(owner: type, method: str, parameters: list[str]) -> None:
    found = getattr(owner, method, None)
    assert callable(found), f"paramiko {paramiko.__version__}: {owner.__name__}.{method} is gone"
    assert list(inspect.signature(found).parameters) == parameters, f"{owner.__name__}.{method} changed"


def test_the_hooks_paramiko_calls_us_through_are_still_called() -> None:
    # the VERSION packet (and its extensions) arrives through _read_packet in _send_version
    assert "self._read_packet()" in inspect.getsource(BaseSFTP._send_version)
    # a reply to _async_request(fileobj, ...) is handed to fileobj._async_response(t, msg, num)
    assert "fileobj._async_response(t, msg, num)" in inspect.getsource(paramiko.SFTPClient._read_response)
    # SFTPClient.__init__ negotiates the version (the extensions) itself
    assert "_send_version()" in inspect.getsource(paramiko.SFTPClient.__init__)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def sftp(sshd: SshServer) -> Iterator[client._SFTPClient]:
    transport = paramiko.Transport((sshd.host, sshd.port))
    transport.connect(username=sshd.user, pkey=paramiko.Ed25519Key.from_private_key_file(str(sshd.client_key)))
    opened = client._SFTPClient.from_transport(transport)
    assert opened is not None
    yield opened
    opened.close()
    transport.close()


def test_extensions_limits_and_pipelined_reads_work_against_openssh(sftp: client._SFTPClient, tmp_path: Path) -> None:
    assert {"posix-rename@openssh.com", "limits@openssh.com"} <= set(sftp.extensions)
    assert sftp.read_length == 255 * 1024  # what OpenSSH announces through limits@openssh.com
    remote = tmp_path / "remote"
    remote.mkdir()
    files = {f"f{i}.bin": os.urandom(i * 1000) for i in range(40)}
    for name, data in files.items():
        (remote / name).write_bytes(data)
    local = tmp_path / "local"
    local.mkdir()
    sftp.fetch_small("canary", [(str(remote / name), len(data), local / name) for name, data in files.items()])
    assert {p.name: p.read_bytes() for p in local.iterdir()} == files
    assert sftp.stat(str(remote)).st_size is not None  # the channel is still in step after the pipeline


def test_bounded_listing_reads_names_or_stops_at_the_bound(sftp: client._SFTPClient, tmp_path: Path) -> None:
    folder = tmp_path / "listed"
    folder.mkdir()
    for i in range(300):
        (folder / f"名-{i:03d}.csv").write_bytes(b"")
    assert sorted(sftp.list_names(str(folder), 300) or []) == sorted(p.name for p in folder.iterdir())
    assert sftp.list_names(str(folder), 10) is None  # more than the bound: not read to the end
    assert sftp.stat(str(folder)).st_size is not None  # the directory handle was closed, the channel in step
