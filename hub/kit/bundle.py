"""What a kit loads in advance (GET /api/v1/kit/bundle): the items its agent may take at the door,
each with its form as fields (for the page) and as JSON Schema (for the check), and its materials.

Which items: those of the catalogue delegated to the channel of the agent's HOME desk (the desk
the agent's applications are received at, `users.desk_code`): `hub.applications.receive` refuses
an item not delegated to that desk's channel, so offering any other would only produce refusals.
The roster's other desks (`agents.desks`) are where the agent serves; applications still enter at
the home desk. Bundles (一件事) are left out of the kit for now: they are taken at a desk."""

from __future__ import annotations

from typing import Any

from hub.catalog.jsonschema import item_schema
from hub.catalog.models import CHANNEL_ZH
from hub.context import Hub
from hub.kit.devices import DeviceAuth
from hub.kit.sync import MAX_PHOTOS, MAX_RECORDS


def items_for(hub: Hub, desk_code: str) -> list[Any]:
    desk = hub.catalog.desks[desk_code]
    return [i for i in hub.catalog.items.values() if desk.channel in i.channels and i.form is not None]


def bundle(hub: Hub, auth: DeviceAuth) -> dict[str, Any]:
    desk = hub.catalog.desks[auth.desk]
    items = []
    for item in items_for(hub, auth.desk):
        items.append(
            {
                "code": item.code,
                "name": item.name,
                "department": hub.catalog.departments[item.department].name
                if item.department in hub.catalog.departments
                else item.department,
                "fields": [
                    {
                        "name": f.name,
                        "label": f.label,
                        "type": f.type,
                        "required": f.required,
                        "options": f.options,
                        "help": f.help,
                        "required_if": f.required_if,
                    }
                    for f in item.form
                ],
                "materials": [
                    {"name": m.name, "required": m.required}
                    for m in hub.catalog.materials_of(item)
                    if m.supplied_by == "applicant"
                ],
                "schema": item_schema(item),
            }
        )
    return {
        "desk": {
            "code": desk.code,
            "name": desk.name,
            "channel": CHANNEL_ZH.get(desk.channel.value, desk.channel.value),
        },
        "agent": {"name": auth.agent.name},
        "items": items,
        "limits": {
            "records_per_request": MAX_RECORDS,
            "photos_per_record": MAX_PHOTOS,
            "photo_bytes": hub.settings.max_material_bytes,
            # the kit sizes its batches to stay well under the server's body limit (ten files + form)
            "request_bytes": hub.settings.max_material_bytes * 6,
        },
    }
