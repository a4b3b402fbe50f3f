"""`hub kit devices list|revoke`: the offline kits (政务背包) agents enrolled; revoke a lost one
(its next sync is refused and it wipes its data). The same rules as /kit/devices (hub.kit.devices)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hub.cli.common import ActorName, console, echo, make_actor, open_hub, print_json
from hub.kit import devices
from hub.lifecycle import Role

app = typer.Typer(help="The offline kit (政务背包): enrolled devices.", no_args_is_help=True)
devices_app = typer.Typer(help="Enrolled kit devices: list, revoke.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")

RevokerRole = Annotated[Role, typer.Option("--role", help="Role acted in: ops or supervisor")]


@devices_app.command("list")
def list_(
    ctx: typer.Context,
    actor: ActorName = None,
    role: RevokerRole = Role.ops,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every enrolled device with its agent, last sync and whether it is revoked."""
    hub = open_hub(ctx)
    rows = [d.as_dict() for d in devices.list_devices(hub, make_actor(actor, role, None, None), None)]
    if as_json:
        print_json(rows)
        return
    table = Table("编号", "设备名称", "代办员", "账号", "登记时间 (UTC)", "最近同步 (UTC)", "状态")
    for r in rows:
        state = f"已吊销 {r['revoked_at']} {r['revoked_by']}" if r["revoked_at"] else "有效"
        table.add_row(
            str(r["id"]),
            str(r["name"]),
            str(r["agent"]),
            str(r["username"]),
            str(r["created_at"]),
            str(r["last_sync_at"] or "从未"),
            state,
        )
    console().print(table)


@devices_app.command()
def revoke(
    ctx: typer.Context,
    device_id: Annotated[int, typer.Argument(help="The device's number (hub kit devices list)")],
    actor: ActorName = None,
    role: RevokerRole = Role.ops,
) -> None:
    """Revoke a lost or stolen device: its sync is refused (device_revoked) and the kit wipes itself."""
    hub = open_hub(ctx)
    d = devices.revoke(hub, make_actor(actor, role, None, None), device_id)
    echo(f"设备 {d.id}（{d.name}，{d.agent_name}）已吊销 {d.revoked_at:%Y-%m-%d %H:%M} UTC (revoked)")
