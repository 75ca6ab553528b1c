"""Typed keys for the services kept on the aiohttp Application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from flowboard.canvas.service import CanvasService
    from flowboard.config import Settings
    from flowboard.db.database import Database
    from flowboard.streams.hub import StreamHub

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DATABASE: web.AppKey[Database] = web.AppKey("database")
HUB: web.AppKey[StreamHub] = web.AppKey("hub")
CANVAS: web.AppKey[CanvasService] = web.AppKey("canvas")
