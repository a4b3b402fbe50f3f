"""`hub sandbox`: run the sandbox department systems and intake sources, write sample batches."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

SFTP_DIR = Path(".sandbox/shebao")
BANK_DIR = Path(".sandbox/bank-xiahong")
ENCLAVE_DIR = Path(".sandbox/enclave-hangzhou")

# Sample residents the 公安 sandbox knows, for 网上核验 (fictional, valid check digits).
SAMPLE_HOUSEHOLDS = {
    "330329195003150214": ("林阿婆", "浙江省温州市泰顺县罗阳镇下洪社区"),
    "330329199007010137": ("陈志强", "浙江省温州市泰顺县百丈镇"),
}


sandbox = typer.Typer(help="Sandbox department systems on 127.0.0.1 (for trials and tests).", no_args_is_help=True)


@sandbox.command("run")
def run(
    port: int = typer.Option(8701, help="Port of the 医保 REST system"),
    soap_port: int = typer.Option(8702, help="Port of the 公安 SOAP system"),
    sftp_port: int = typer.Option(8703, help="Port of the 社保 SFTP system"),
    sftp_dir: Annotated[Path, typer.Option(help="社保 SFTP folder: host_key, known_hosts, root/")] = SFTP_DIR,
    bank_port: int = typer.Option(8704, help="Port of the 下洪 bank outlet's SFTP batch drop"),
    bank_dir: Annotated[Path, typer.Option(help="Bank drop folder: host_key, known_hosts, root/")] = BANK_DIR,
    enclave_port: int = typer.Option(8705, help="Port of the Hangzhou enclave window's REST intake system"),
    enclave_dir: Annotated[Path, typer.Option(help="Enclave system's batch folder")] = ENCLAVE_DIR,
    irs_port: int = typer.Option(8706, help="Port of the province's data platform verification gateway"),
    oidc_port: int = typer.Option(8707, help="Port of the province's identity service (OpenID Connect, 网办 sign-in)"),
    sample_batches: int = typer.Option(
        3, min=0, help="Records in the sample batch each intake source offers at start (0: none)"
    ),
    token_env: str = typer.Option(
        "HUB_SANDBOX_TOKEN", help="Environment variable holding the REST token and the SOAP and SFTP passwords"
    ),
    latency: float = typer.Option(0.0, help="Seconds added to every response"),
    failure_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of requests answered 503"),
    decide_after: float | None = typer.Option(None, help="Approve parts by itself this many seconds after receipt"),
) -> None:
    """Run the sandbox systems until interrupted: 医保 (REST), 公安 (SOAP), 社保 (SFTP), the
    province's data platform verification gateway (REST, 网上核验), and two intake sources — the
    下洪 bank outlet's SFTP drop and the Hangzhou enclave window (REST)."""
    from plugins.sandbox.data_sharing import DataSharingGateway
    from plugins.sandbox.enclave_source import EnclaveSource
    from plugins.sandbox.intake_batches import write_sample_batch
    from plugins.sandbox.oidc_provider import SandboxIdentityProvider
    from plugins.sandbox.rest_department import RestDepartment
    from plugins.sandbox.sftp_department import BankDrop, SftpDepartment, load_or_create_host_key
    from plugins.sandbox.soap_department import SoapDepartment

    token = os.environ.get(token_env)
    if not token:
        raise typer.BadParameter(
            f"set {token_env} to the bearer token the hub's connection uses", param_hint="--token-env"
        )
    dept = RestDepartment(
        token=token, latency=latency, failure_rate=failure_rate, port=port, decide_after=decide_after
    ).start()
    gongan = SoapDepartment(
        password=token, port=soap_port, households=SAMPLE_HOUSEHOLDS, latency=latency, failure_rate=failure_rate
    ).start()
    typer.echo(f"医保 REST sandbox on {dept.url}; 公安 SOAP sandbox on {gongan.wsdl_url} (Ctrl-C stops)")
    shebao = SftpDepartment(
        sftp_dir / "root",
        password=token,
        host_key=load_or_create_host_key(sftp_dir / "host_key"),
        port=sftp_port,
        latency=latency,
        decide_after=decide_after,
    ).start()
    # the hub pins this host key through the known_hosts file (connections/shebao-sftp.yaml)
    (sftp_dir / "known_hosts").write_text(shebao.known_hosts_line + "\n", encoding="utf-8")
    typer.echo(f"社保 SFTP sandbox on sftp://hub@{shebao.host}:{shebao.port} ({shebao.host_key_fingerprint})")
    bank = BankDrop(
        bank_dir / "root", password=token, host_key=load_or_create_host_key(bank_dir / "host_key"), port=bank_port
    ).start()
    (bank_dir / "known_hosts").write_text(bank.known_hosts_line + "\n", encoding="utf-8")
    enclave = EnclaveSource(enclave_dir, token=token, port=enclave_port).start()
    if sample_batches:
        stamp = time.strftime("%Y%m%d%H%M%S")
        write_sample_batch(bank.inbox_path / f"XH-{stamp}", f"XH-{stamp}", "bank-xiahong", sample_batches)
        write_sample_batch(enclave.root / f"HZ-{stamp}", f"HZ-{stamp}", "enclave-hangzhou", sample_batches)
    typer.echo(f"下洪银行网点 SFTP batch drop on sftp://hub@{bank.host}:{bank.port}{bank.inbox_dir}")
    typer.echo(f"杭州飞地窗口 REST intake on {enclave.url}/intake/batches")
    irs = DataSharingGateway(token=token, port=irs_port).start()
    typer.echo(f"公共数据平台 核验接口 (verification gateway) and 电子证照共享服务 (/licences) on {irs.url}")
    idp = SandboxIdentityProvider(port=oidc_port).start()
    typer.echo(f"统一身份认证 (OpenID Connect, 网办 sign-in) on {idp.issuer}")
    _wait()
    for server in (dept, gongan, shebao, bank, enclave, irs, idp):
        server.stop()


def _wait() -> None:
    """Until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


@sandbox.command("oidc")
def oidc(
    port: int = typer.Option(8707, help="Port to listen on (127.0.0.1)"),
    client_id: str = typer.Option("tongban-hub", help="The hub's client id (a public client: PKCE only)"),
    id_claim: str = typer.Option("id_number", help="The claim holding the ID number (idcard, cert_no, …)"),
) -> None:
    """Run only the sandbox identity service (OpenID Connect) residents sign in with, until
    interrupted: pick a sample resident on its page (password 123456)."""
    from plugins.sandbox.oidc_provider import SandboxIdentityProvider

    idp = SandboxIdentityProvider(clients={client_id: None}, port=port, id_claim=id_claim).start()
    typer.echo(f"统一身份认证 sandbox (OpenID Connect) on {idp.issuer} (Ctrl-C stops)")
    for r in idp.residents:
        typer.echo(f"  {r.key}: {r.name} {r.id_number[:6]}********{r.id_number[-4:]}")
    _wait()
    idp.stop()


@sandbox.command("partner-home")
def partner_home(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="Folder for the 福鼎 hub home")],
    our_url: Annotated[str, typer.Option(help="Where 福鼎 reaches this hub")] = "http://127.0.0.1:8000",
    partner_url: Annotated[str, typer.Option(help="Where this hub reaches 福鼎")] = "http://127.0.0.1:8010",
) -> None:
    """Write the sandbox partner hub 福鼎 (Fujian) at TARGET and pair it with this hub: both
    exchange keys (made if missing) and each side's partners/NAME.yaml for the other. Then
    `hub --home TARGET db upgrade`, `hub --home TARGET serve --port 8010`, and
    `hub partners sync-catalogue` here."""
    from hub.cli.common import home_of
    from plugins.sandbox.partner_hub import pair, write_partner_home

    ours = home_of(ctx)
    theirs = write_partner_home(target)
    pair(ours, our_url, theirs, partner_url)
    typer.echo(f"福鼎 hub home: {theirs}; partners/fuding.yaml written in {ours}")


@sandbox.command("batch")
def batch(
    folder: Annotated[Path, typer.Argument(help="Where to write the batch (a new folder; its name is the batch id)")],
    desk: Annotated[str, typer.Option(help="The desk the batch is from")] = "bank-xiahong",
    records: Annotated[int, typer.Option(min=1, help="How many records")] = 3,
) -> None:
    """Write a sample intake batch (records, scans, manifest, then the .ok marker beside it)."""
    from plugins.sandbox.intake_batches import write_sample_batch

    if folder.exists():
        raise typer.BadParameter(f"{folder} 已存在 (already exists)", param_hint="FOLDER")
    write_sample_batch(folder, folder.name, desk, records)
    typer.echo(f"{folder} ({records} records), then {folder.name}.ok")
