"""`hub intake`: the intake batch format for the people who write batches (bank and enclave
systems' developers): its JSON Schemas. A sample batch to copy: `hub sandbox batch FOLDER`."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.batches.format import schemas
from hub.cli.common import print_json

app = typer.Typer(help="The intake batch format (docs/batch-format.md).", no_args_is_help=True)


@app.command("schema")
def schema(
    which: Annotated[str, typer.Argument(help="manifest or record")] = "record",
) -> None:
    """Print the JSON Schema of manifest.json or of one record."""
    name = f"{which}.schema.json"
    found = schemas()
    if name not in found:
        raise typer.BadParameter("须为 manifest 或 record (manifest or record)", param_hint="WHICH")
    print_json(found[name])
