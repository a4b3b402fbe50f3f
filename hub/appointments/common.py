"""What every part of the queue shares: the checked item groups of the opened hub, who may act at
a desk, local times, and the masked identity shown in lists."""

from __future__ import annotations

import re
from datetime import date, datetime, time

from hub.applications.models import Actor
from hub.appointments.groups import QUEUE_CHANNELS, Groups, load_groups
from hub.catalog.models import Desk
from hub.context import Hub
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.lifecycle import FRONT, Role

_KEY = "hub.appointments.groups"
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def groups_of(hub: Hub) -> Groups:
    """The item groups, loaded once per opened hub (config/appointments.yaml)."""
    groups = hub.extensions.get(_KEY)
    if groups is None:
        groups = hub.extensions[_KEY] = load_groups(hub.settings.config_dir, hub.catalog)
    return groups


def queue_desk(hub: Hub, code: str, field: str = "desk") -> Desk:
    desk = hub.catalog.desks.get(code)
    if desk is None or desk.channel not in QUEUE_CHANNELS:
        raise InvalidInput.field(field, f"没有这个可预约的窗口：{code[:64]}", "no such hall, township or enclave desk")
    return desk


def group_at(hub: Hub, desk: str, code: str, field: str = "group"):
    group = groups_of(hub).get(code)
    if group is None or desk not in groups_of(hub).desks_of[group.code]:
        raise InvalidInput.field(field, f"该窗口不办理此类事项：{code[:32]}", "this desk serves no such item group")
    return group


def staff_at(actor: Actor, desk: str, *, supervisor: bool = True) -> None:
    """Desk staff act at their own desk only; a supervisor anywhere (slots, figures)."""
    if actor.role in FRONT and actor.desk == desk:
        return
    if supervisor and actor.role is Role.supervisor:
        return
    if actor.role in FRONT:
        raise NotFound("没有找到 (not found)")  # another desk's: as if it did not exist
    raise Forbidden("只有本窗口工作人员或督查人员可以操作 (desk staff or supervisors only)")


def local_now(hub: Hub) -> datetime:
    return hub.clock().astimezone(hub.settings.tz).replace(tzinfo=None)


def parse_day(raw: str | date | None, field: str = "day") -> date:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        raise InvalidInput.field(field, "日期格式应为 YYYY-MM-DD", "date as YYYY-MM-DD") from None


def parse_hhmm(raw: str, field: str) -> time:
    raw = (raw or "").strip()
    if not HHMM.match(raw):
        raise InvalidInput.field(field, "时间格式应为 HH:MM（如 09:00）", "time as HH:MM, e.g. 09:00")
    return time.fromisoformat(raw)
