"""What a newcomer opens first: `/` and `/console` lead to the console, and /docs works offline
(Swagger UI's files come from Tillkey itself, never a CDN)."""

from __future__ import annotations

from pathlib import Path

from tests import inprocess


def test_the_root_and_console_without_slash_lead_to_the_console(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            for path in ("/", "/console"):
                r = await t.client.get(path)
                assert r.status_code == 302 and r.headers["location"] == "/console/", path
                assert (await t.client.head(path)).status_code == 302
            signin = await t.client.get("/", follow_redirects=True)
            assert signin.status_code == 200 and "text/html" in signin.headers["content-type"]
            assert (await t.client.post("/")).status_code == 405  # nothing else lives there

    inprocess.run(body)


def test_api_docs_load_every_file_from_tillkey(tmp_path: Path) -> None:
    async def body() -> None:
        async with inprocess.running(tmp_path) as t:
            page = await t.client.get("/docs")
            assert page.status_code == 200
            csp = page.headers["content-security-policy"]
            assert "https:" not in csp and "cdn" not in csp and "script-src 'self'" in csp
            assert "cdn" not in page.text and "https://" not in page.text
            for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
                assert asset in page.text
                r = await t.client.get(asset)
                assert r.status_code == 200 and len(r.content) > 10_000, asset
            spec = (await t.client.get("/openapi.json")).json()
            assert spec["openapi"].startswith("3.1")  # Swagger UI 5 renders 3.1; version 4 did not
            assert "/" not in spec["paths"] and "/docs" not in spec["paths"]
            assert (await t.client.get("/redoc")).status_code == 404  # it loaded from a CDN: gone

    inprocess.run(body)
