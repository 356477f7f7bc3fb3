"""The dashboard's files: GET / and /static/*, nothing outside the folder.
The page is ES modules loaded from the gateway alone (no build step), each
under 400 lines, and none carries a copy of the vocabulary the server
serves (GET /v1/vocabulary)."""

from __future__ import annotations

import re

from common.events import TRIP_TYPES
from common.fares import PRODUCTS
from gateway.routes.site import STATIC_DIR

# The modules the page loads, from dashboard.js through its imports.
MODULES = {
    "dashboard.js", "vocabulary.js", "auth.js", "health.js", "util.js", "state.js",
    "overview.js", "live.js", "map.js", "panels.js", "story.js", "topology.js",
    "storage.js", "drawer.js",
}
IMPORT = re.compile(r'^import \{[^}]*\} from "\./([\w.-]+)";$', re.M)
JAVASCRIPT = ("text/javascript", "application/javascript")


async def test_the_root_serves_the_dashboard_page(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert text == (STATIC_DIR / "index.html").read_text()
    # One module script, nothing inline (the CSP allows 'self' only).
    assert re.findall(r"<script[^>]*>", text) == [
        '<script type="module" src="/static/dashboard.js">']
    assert [body.strip() for body in re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)] == [""]


async def test_every_module_the_page_imports_is_served_as_javascript(client):
    seen, todo = set(), ["dashboard.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200, name
        assert resp.content_type in JAVASCRIPT, (name, resp.content_type)
        body = await resp.read()
        assert body == (STATIC_DIR / name).read_bytes()
        todo.extend(IMPORT.findall(body.decode()))
    assert seen == MODULES


def test_each_module_holds_one_concern_in_under_400_lines():
    for name in MODULES:
        lines = (STATIC_DIR / name).read_text().count("\n")
        assert lines <= 400, (name, lines)


def test_no_module_carries_a_copy_of_the_vocabulary():
    """Statuses of events and products come from GET /v1/vocabulary. The map
    knows one event by name: an offer, which it draws as a line to the driver."""
    for name in MODULES:
        text = (STATIC_DIR / name).read_text()
        named_events = {t for t in TRIP_TYPES if f'"{t}"' in text}
        assert named_events <= {"trip.offered"}, (name, named_events)
        named_products = {p for p in PRODUCTS if f'"{p}"' in text}
        assert named_products == set(), (name, named_products)


async def test_the_other_files_of_the_page_are_served_from_the_folder(client):
    for name, content_type in (("dashboard.css", "text/css"), ("map-sf.json", "application/json"),
                               ("docs.js", JAVASCRIPT[0])):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200, name
        assert resp.content_type in (content_type, *JAVASCRIPT), (name, resp.content_type)
        assert await resp.read() == (STATIC_DIR / name).read_bytes()


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
