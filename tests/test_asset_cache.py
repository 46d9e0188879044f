"""Fingerprinted build files are cached for a year; pages, Billy's own unversioned styles and the
API are not (a deploy must reach the next page load)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from billy_app.asset_cache import immutable_assets


def _served() -> TestClient:
    async def script(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("console.log(1)", headers={"etag": '"abc"'})

    async def missing(request):  # type: ignore[no-untyped-def]
        return Response(status_code=404)

    app = Starlette(
        routes=[
            Route("/assets/manifest-ebb2a251.js", script),
            Route("/assets/gone-0000.js", missing),
            Route("/billy.css", script),
            Route("/dashboard", script),
        ]
    )
    return TestClient(immutable_assets(app))


def test_a_fingerprinted_script_is_kept_for_a_year() -> None:
    answer = _served().get("/assets/manifest-ebb2a251.js")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["etag"] == '"abc"'


def test_pages_own_styles_and_misses_are_not_kept() -> None:
    client = _served()
    for path in ("/billy.css", "/dashboard"):
        assert "cache-control" not in client.get(path).headers, path
    assert "cache-control" not in client.get("/assets/gone-0000.js").headers
