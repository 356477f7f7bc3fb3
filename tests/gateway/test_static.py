"""The dashboard's files: GET / and /static/*, nothing outside the folder."""

from __future__ import annotations

from gateway.routes.site import STATIC_DIR


async def test_the_root_serves_the_dashboard_page(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    text = await resp.text()
    if (STATIC_DIR / "index.html").is_file():
        assert text == (STATIC_DIR / "index.html").read_text()
    else:
        assert "/openapi.json" in text


async def test_static_files_are_served_from_the_folder(client):
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    for path in files[:5]:
        resp = await client.get(f"/static/{path.relative_to(STATIC_DIR)}")
        assert resp.status == 200
        assert await resp.read() == path.read_bytes()


async def test_nothing_outside_the_folder_is_served(client):
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2Fapp.py",
        "/static/nope.js",
        "/static/",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
