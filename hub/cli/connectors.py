"""`hub plugins` and `hub connectors`: what is installed, how connections are configured, and
whether each department system can be reached. Secrets are never printed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from hub.applications import Actor
from hub.applications.scope import get as get_application
from hub.cli.common import console, echo, home_of, open_hub, print_json, styled
from hub.connection_config import by_connection, load_connections
from hub.connectors import DeliveryError, PartMessage, PollFailure, Preview, Receipt, Unsupported
from hub.context import Hub
from hub.errors import ConfigInvalid, HubError
from hub.health import check_connection
from hub.ids import mask_id
from hub.jobs.dispatch import part_message, sample_part
from hub.lifecycle import Role
from hub.ops import plugin_rows
from hub.outgoing_materials import SampleMaterials, ShownMaterials
from hub.plugins import PluginHost
from hub.settings import load_settings
from hub.storage.tables import OutboxRow

plugins_app = typer.Typer(help="Installed plugins and what they register.", no_args_is_help=True)
connectors_app = typer.Typer(help="Connector types and the configured connections.", no_args_is_help=True)


def _host(ctx: typer.Context) -> PluginHost:
    """The plugins of the home's allowlist (hub.yaml's `plugins:`, HUB_PLUGINS first)."""
    try:
        configured = load_settings(home_of(ctx)).plugins
    except HubError:  # listing plugins works without a hub home
        configured = None
    return PluginHost.configured(configured)


@plugins_app.command("list")
def plugins_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each plugin: entry point, module, distribution, loaded (allowlist) and the hooks it implements."""
    rows = plugin_rows(_host(ctx))
    if as_json:
        print_json(rows)
        return
    table = Table("plugin", "module", "distribution", "loaded", "hooks", "connector types")
    for r in rows:
        table.add_row(
            r["name"],
            r["module"],
            r["distribution"],
            "yes" if r["loaded"] else "no (not allowed)",
            ", ".join(r["hooks"]),
            ", ".join(r["connector_types"]),
        )
    console().print(table)


@connectors_app.command("spec")
def spec(ctx: typer.Context, type_: Annotated[str, typer.Argument(metavar="TYPE")]) -> None:
    """Print a connector type's configuration JSON Schema."""
    types = _host(ctx).connector_types
    if type_ not in types:
        raise typer.BadParameter(f"未知连接器类型 {type_}；已有: {', '.join(sorted(types))}", param_hint="TYPE")
    print_json(types[type_].Spec.model_json_schema())


@connectors_app.command("list")
def list_(ctx: typer.Context) -> None:
    """Connector types available and the connections configured in connections/."""
    settings = load_settings(home_of(ctx))
    host = PluginHost.configured(settings.plugins)
    types = host.connector_types
    connections, problems = load_connections(settings.connections_dir, types, why_unknown=host.why_no_type)
    broken = by_connection(problems)
    table = Table("connection", "type", "capabilities", "concurrency", "description")
    for name, conn in sorted(connections.items()):
        table.add_row(
            name,
            conn.type,
            ", ".join(types[conn.type].capabilities()),
            str(conn.limits.concurrency),
            conn.description or "",
        )
    for name in sorted(broken):
        table.add_row(name, styled("配置错误 broken", "red"), "", "", "; ".join(str(p) for p in broken[name]))
    console().print(table)
    echo(f"types: {', '.join(f'{t} ({types[t].description})' for t in sorted(types))}")


@connectors_app.command("check")
def check(
    ctx: typer.Context, name: Annotated[str | None, typer.Argument(help="One connection; default all")] = None
) -> None:
    """Check each connection (config, credentials, reachability); exit 1 if any fails."""
    settings = load_settings(home_of(ctx))
    host = PluginHost.configured(settings.plugins)
    types = host.connector_types
    connections, problems = load_connections(settings.connections_dir, types, why_unknown=host.why_no_type)
    broken = by_connection(problems)  # one broken file fails its own row, never the others'
    if name is not None and name in broken:
        raise ConfigInvalid(broken[name])
    if name is not None and name not in connections:
        raise typer.BadParameter(f"连接 {name} 未配置 (no such connection)", param_hint="NAME")
    table = Table("connection", "type", "result", "reason")
    failed = 0
    if name is None:
        for conn_name in sorted(broken):
            failed += 1
            reason = "; ".join(str(p) for p in broken[conn_name])
            table.add_row(conn_name, "?", styled("FAIL", "red"), reason)
    for conn_name, conn in sorted(connections.items()):
        if name is not None and conn_name != name:
            continue
        result = check_connection(conn_name, conn, types, settings.dispatch_lease_seconds)
        ok, reason = result.ok, result.detail
        failed += not ok
        table.add_row(conn_name, conn.type, styled("OK", "green") if ok else styled("FAIL", "red"), reason)
    console().print(table)
    if failed:
        raise typer.Exit(1)


@connectors_app.command("verify")
def verify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection (a verifier, e.g. gongan-soap)")],
    kind: Annotated[str, typer.Argument(help="What to verify, e.g. household_registration")],
    subject: Annotated[list[str], typer.Option("--subject", "-s", help="KEY=VALUE, e.g. id_number=…, name=…")],
) -> None:
    """网上核验: confirm an applicant's data with the owning department instead of a paper copy."""
    hub = open_hub(ctx)
    data = {}
    for pair in subject:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE: {pair!r}", param_hint="--subject")
        data[key] = value
    connector = hub.connector(name)
    try:
        result = connector.verify(kind, data)
    except (DeliveryError, Unsupported) as exc:
        raise HubError(f"核验失败 verification failed: {exc}") from None
    finally:
        connector.close()
    shown = {k: (mask_id(v) if k.endswith("id_number") else v) for k, v in data.items()}
    print_json({"connection": name, "kind": kind, "subject": shown, "ok": result.ok, "detail": result.detail})
    if not result.ok:
        raise typer.Exit(1)


@connectors_app.command("licences")
def licences(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection (a licence library, e.g. irs-licences)")],
    type_code: Annotated[str, typer.Argument(help="Licence type code, e.g. YYZZ")],
    holder_id: Annotated[str, typer.Argument(help="The holder's resident ID number or credit code")],
) -> None:
    """电子证照: the holder's licences of one type in a department's licence library (IDs masked)."""
    hub = open_hub(ctx)
    connector = hub.connector(name)
    try:
        found = connector.licences(holder_id.strip().upper(), type_code)
    except (DeliveryError, Unsupported) as exc:
        raise HubError(f"证照查询失败 licence lookup failed: {exc}") from None
    finally:
        connector.close()
    print_json(
        {
            "connection": name,
            "type_code": type_code,
            "holder_id": mask_id(holder_id),
            "licences": [
                r.model_dump(mode="json")
                | {"holder_id": mask_id(r.holder_id), "representative_id": mask_id(r.representative_id or "") or None}
                for r in found
            ],
        }
    )


@connectors_app.command("render")
def render(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection")],
    application: Annotated[
        str | None, typer.Option("--application", "-a", help="Application number (its part for this connection)")
    ] = None,
) -> None:
    """Print exactly what a submission would send (method, address, headers, body; secrets
    masked), for a real application's part or, without --application, a sample part of an item
    routed to this connection. Nothing is sent."""
    hub = open_hub(ctx)
    connector = hub.connector(name)
    try:
        part = _part_of(hub, name, application) if application else sample_part(hub, name)
        # a sample part has placeholder files; a real one its bytes, but never a live pull link
        connector.materials = SampleMaterials() if not application else ShownMaterials(connector.materials)
        try:
            previews = connector.preview(part)
        except (DeliveryError, Unsupported) as exc:
            raise HubError(f"无法生成报文 cannot render: {exc}") from None
    finally:
        connector.close()
    print_json({"connection": name, "part_id": part.part_id, "messages": [_shown(p) for p in previews]})


def _shown(preview: Preview) -> dict[str, Any]:
    """A preview for the terminal: long values (a material inline as base64) cut to their head."""
    body: Any = preview.body
    try:
        body = _cut(json.loads(body))
    except ValueError:
        body = body if len(body) <= 4000 else f"{body[:4000]}…（共 {len(body)} 字符 chars）"
    return {"summary": preview.summary, "headers": preview.headers, "body": body, "attachments": preview.attachments}


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 200:
        return f"{value[:60]}…（共 {len(value)} 字符 chars）"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


def _part_of(hub: Hub, name: str, number: str) -> PartMessage:
    with hub.sessions() as session:
        app = get_application(session, number, Actor(name="cli:render", role=Role.system))
        part = next((p for p in app.parts if p.connection == name), None)
        if part is None:
            raise HubError(f"办件 {number} 没有发往 {name} 的部分 (no part of it goes to {name})")
        return part_message(app, part)


@connectors_app.command("poll")
def poll(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection")],
    receipt: Annotated[str, typer.Option("--receipt", "-r", help="The department's id for a part (remote id)")],
    part: Annotated[
        str | None, typer.Option("--part", help="The hub's part id (default: found by the receipt)")
    ] = None,
) -> None:
    """Ask the department about one receipt and print the update as the hub would read it (the
    status after status_map, reason, documents); nothing is applied. Exit 1 if the answer cannot
    be read."""
    hub = open_hub(ctx)
    part_id = part or _part_id_of(hub, name, receipt)
    connector = hub.connector(name)
    try:
        answers = list(connector.poll([Receipt(part_id=part_id, remote_id=receipt)]))
    except (DeliveryError, Unsupported) as exc:
        raise HubError(f"查询失败 poll failed: {exc}") from None
    finally:
        connector.close()
    shown = []
    for a in answers:
        if isinstance(a, PollFailure):
            shown.append({"part_id": a.part_id, "remote_id": a.remote_id, "error": a.message})
        else:
            data = a.model_dump(mode="json", exclude={"documents"})
            data["documents"] = [
                {"name": d.name, "media_type": d.media_type, "bytes": len(d.content)} for d in a.documents
            ]
            shown.append(data)
    print_json({"connection": name, "updates": shown})
    if not answers or any(isinstance(a, PollFailure) for a in answers):
        raise typer.Exit(1)


def _part_id_of(hub: Hub, name: str, remote_id: str) -> str:
    with hub.sessions() as session:
        found = session.scalars(
            select(OutboxRow.part_id).where(OutboxRow.connection == name, OutboxRow.remote_id == remote_id)
        ).first()
    return found or f"unknown-{remote_id}"
