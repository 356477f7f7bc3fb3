"""GET /docs: the API explorer's page and the few files of Swagger UI it needs."""

from __future__ import annotations


async def test_the_explorer_page_loads_swagger_ui_from_the_gateway(client):
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert '<script src="/docs/static/swagger-ui-bundle.js">' in page
    assert "<script>" not in page  # no inline script: the page runs under a strict CSP
    js = await client.get("/docs/static/swagger-ui-bundle.js")
    assert js.status == 200 and "SwaggerUIBundle" in (await js.text())[:2000]
    css = await client.get("/docs/static/swagger-ui.css")
    assert css.status == 200 and css.content_type == "text/css"


async def test_only_the_named_files_of_the_package_are_served(client):
    for name in ("swagger-editor.js", "..%2F__init__.py", "LICENSE", "index.html"):
        resp = await client.get(f"/docs/static/{name}")
        assert resp.status == 404, name
        assert resp.content_type == "application/problem+json"
