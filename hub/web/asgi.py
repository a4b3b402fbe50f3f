"""The ASGI entry point for uvicorn workers: the app over the hub home in $HUB_HOME."""

from __future__ import annotations

from hub.context import Hub
from hub.settings import find_home
from hub.web.app import create_app

app = create_app(Hub.open(find_home()))
