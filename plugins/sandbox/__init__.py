"""Sandbox department systems: real servers on 127.0.0.1 that behave like county systems, for
tests, benchmarks and the demo. `hub sandbox run` starts them in the foreground.

Modules: `cli` (the `hub sandbox` commands), `rest_department`, `soap_department`,
`sftp_department` (the department systems), `enclave_source`, `intake_batches` (intake sources and
their sample batches). This module holds only the hook implementations."""

from __future__ import annotations

import typer

from hub.hookspecs import hookimpl
from plugins.sandbox.cli import sandbox


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    cli.add_typer(sandbox, name="sandbox")
