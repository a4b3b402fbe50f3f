"""Sandbox department systems: real servers on 127.0.0.1 that behave like county systems, for
tests, benchmarks and the demo. `hub sandbox run` starts them in the foreground."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from hub.hookspecs import hookimpl

SFTP_DIR = Path(".sandbox/shebao")

# Sample residents the 公安 sandbox knows, for 网上核验 (fictional, valid check digits).
SAMPLE_HOUSEHOLDS = {
    "330329195003150214": ("林阿婆", "浙江省温州市泰顺县罗阳镇下洪社区"),
    "330329199007010137": ("陈志强", "浙江省温州市泰顺县百丈镇"),
}


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    sandbox = typer.Typer(help="Sandbox department systems on 127.0.0.1 (for trials and tests).", no_args_is_help=True)

    @sandbox.command("run")
    def run(
        port: int = typer.Option(8701, help="Port of the 医保 REST system"),
        soap_port: int = typer.Option(8702, help="Port of the 公安 SOAP system"),
        sftp_port: int = typer.Option(8703, help="Port of the 社保 SFTP system"),
        sftp_dir: Annotated[Path, typer.Option(help="社保 SFTP folder: host_key, known_hosts, root/")] = SFTP_DIR,
        token_env: str = typer.Option(
            "HUB_SANDBOX_TOKEN", help="Environment variable holding the REST token and the SOAP and SFTP passwords"
        ),
        latency: float = typer.Option(0.0, help="Seconds added to every response"),
        failure_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of requests answered 503"),
        decide_after: float | None = typer.Option(None, help="Approve parts by itself this many seconds after receipt"),
    ) -> None:
        """Run the sandbox 医保 REST system until interrupted."""
        from plugins.sandbox.rest_department import RestDepartment
        from plugins.sandbox.sftp_department import SftpDepartment, load_or_create_host_key
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
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        dept.stop()
        gongan.stop()
        shebao.stop()

    cli.add_typer(sandbox, name="sandbox")
