"""Reflex configuration. Instance settings are `BILLY_*` variables (services.config);
this file only holds what Reflex itself reads."""

import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

from services.config import get_settings

_settings = get_settings()
_redis = _settings.redis_url or None

# Every handler is a public endpoint, so no generated setters a client could call:
# state_auto_setters is off by default in this Reflex version and must stay so.
config = rx.Config(
    app_name="billy_app",
    telemetry_enabled=False,
    # Reflex keeps per-tab UI state in Redis when BILLY_REDIS_URL is set, else in memory.
    redis_url=_redis,
    state_manager_mode="redis" if _redis else "memory",
    show_built_with_reflex=False,
    # The websocket is authenticated by cookie, so only Billy's own pages may open it.
    cors_allowed_origins=_settings.allowed_origins,
    disable_plugins=[SitemapPlugin],
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
)
