"""The REST API, /api/v1 (issue 13)."""

from billy_app.api.v1.app import RestMount, build_rest_api, build_rest_app

__all__ = ["RestMount", "build_rest_api", "build_rest_app"]
