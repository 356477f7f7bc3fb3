"""The dashboard in a real browser (Debian's Chromium driven by Playwright)
against a real system: drivers and waiting pickups come onto the map from
the ops overview alone; with the simulated city running, the map and the
feed change as the city moves, and a trip's timeline opens on click."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.demo import OPS, http_json, ops_token
from tests.harness import ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots a person can look at after a run.
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

def wait_for(page, expression: str, timeout: float = 30_000) -> None:
    """Until `expression` is true in the page. Polled through page.evaluate:
    Playwright's wait_for_function evaluates a string inside the page, which
    the dashboard's Content-Security-Policy (no eval) rightly refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout / 1000:g} s: {expression}")
        page.wait_for_timeout(100)


pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def city(demo_system, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("city") / "city.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.sim", "--gateway", demo_system.url,
             "--drivers", "8", "--riders", "8", "--pace", "20"],
            cwd=ROOT, env={**os.environ, "CITY_LOG_EVERY_S": "5"},
            stdout=log, stderr=log, start_new_session=True,
        )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def page(tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's chromium at /usr/bin/chromium: "
            "`make test` installs it when run as root with apt-get; else run "
            "`sudo apt-get install chromium`"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.errors = []
            page.requests = []
            page.on("request", lambda r: page.requests.append(r.url))
            page.on("pageerror", lambda exc: page.errors.append(str(exc)))
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
            yield page
            context.close()
        finally:
            browser.close()


def map_state(page) -> dict:
    return page.evaluate("({...document.getElementById('map').dataset})")


def canvas_image(page) -> str:
    return page.evaluate("document.getElementById('map').toDataURL('image/png')")


# The workarounds of a page that had to rebuild the map itself: a nearby
# search from the region's center and a GET per trip. The overview has it all.
RECONSTRUCTION = re.compile(r"/v1/drivers/nearby|/v1/trips/[^/?]+$")


def sign_up(base: str, kind: str, **extra) -> str:
    """A new rider or driver; its session token."""
    name = f"{kind[0]}{secrets.token_hex(4)}"
    body = {"user_name": name, "password": "demo-password-123", "first_name": "Map",
            "last_name": "Test", "email": f"{name}@example.com", **extra}
    status, _ = http_json("POST", f"{base}/v1/{kind}s", body)
    assert status == 201
    status, session = http_json("POST", f"{base}/v1/sessions",
                                {"user_name": name, "password": "demo-password-123"})
    assert status == 201
    return session["token"]


def test_drivers_and_waiting_pickups_come_from_the_overview(demo_system, page):
    base = demo_system.url
    # A driver in the south-west corner, a pickup in the north-east one: too
    # far apart for an offer, so the trip waits while the page looks.
    driver = sign_up(base, "driver", product="premium", car={
        "make": "Tesla", "model": "Model S", "color": "black", "plate": "MAP1", "seats": 4})
    assert http_json("PUT", f"{base}/v1/driver/location", {"lat": 37.705, "lon": -122.51},
                     token=driver)[0] == 204
    assert http_json("POST", f"{base}/v1/driver/status", {"status": "online"},
                     token=driver)[0] == 200
    rider = sign_up(base, "rider", age=30)
    status, trip = http_json("POST", f"{base}/v1/trips", {
        "pickup": {"lat": 37.825, "lon": -122.36}, "dropoff": {"lat": 37.80, "lon": -122.40},
        "product": "premium"}, token=rider)
    assert status == 201
    try:
        page.goto(f"{base}/#token={ops_token(base)}")
        wait_for(page, 
            "(() => { const d = document.getElementById('map').dataset;"
            " return d.source === 'overview' && Number(d.drivers) >= 1"
            " && Number(d.available) >= 1 && Number(d.pickups) >= 1; })()",
            timeout=30_000,
        )
        assert page.locator(f"#queue-table a[data-trip='{trip['id']}']").count() == 1
        # The counters and the drivers' table speak the server's vocabulary,
        # in its order: the page carries no list of statuses or products.
        _, vocabulary = http_json("GET", f"{base}/v1/vocabulary")
        assert page.evaluate(
            "[...document.querySelectorAll('#counters [data-status]')].map(c => c.dataset.status)"
        ) == [s["name"] for s in vocabulary["trip_statuses"]]
        assert page.evaluate(
            "[...document.querySelectorAll('#drivers-table tbody tr td:first-child')]"
            ".map(c => c.textContent)"
        ) == [p["name"] for p in vocabulary["products"]] + ["all"]
        assert f"{base}/v1/vocabulary" in page.requests
        # Why it waits: the only premium driver is across the city.
        why = page.locator("#queue-table tr", has=page.locator(f"a[data-trip='{trip['id']}']"))
        wait_for(page,
                 "[...document.querySelectorAll('#queue-table .wait-why')]"
                 ".some(s => s.textContent.includes('past the 5.0 km radius'))", timeout=10_000)
        assert "the nearest available premium driver is" in why.inner_text()
        # One server: the Redis panel says so, with no shard table.
        wait_for(page, "document.getElementById('topology').dataset.mode === 'one server'",
                 timeout=10_000)
        assert "one server" in page.locator("#topology-summary").inner_text()
        assert page.locator("#topology-table").is_hidden()
        assert page.locator("#region-name").inner_text() == "sf"
        assert page.evaluate("document.getElementById('map').dataset.region") == "sf"
        assert not [u for u in page.requests if RECONSTRUCTION.search(u)], page.requests
        assert not page.errors, page.errors
    finally:
        http_json("POST", f"{base}/v1/trips/{trip['id']}/cancel", {}, token=rider)
        http_json("POST", f"{base}/v1/driver/status", {"status": "offline"}, token=driver)


def test_the_dashboard_follows_the_city_live(demo_system, city, page, tmp_path):
    token = ops_token(demo_system.url)
    page.goto(f"{demo_system.url}/#token={token}")

    # The token left the address bar for sessionStorage; no sign-in form.
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('ops_token')") == token
    assert page.locator("#login").is_hidden()

    # Drivers appear on the map and the live feed fills with trip events.
    wait_for(page, 
        "Number(document.getElementById('map').dataset.drivers) > 0", timeout=60_000
    )
    wait_for(page, 
        "[...document.querySelectorAll('#feed li')]"
        ".some(li => li.dataset.type.startsWith('trip.'))",
        timeout=60_000,
    )
    first_map, first_image = map_state(page), canvas_image(page)
    first_feed = page.locator("#feed li").count()
    wait_for(page, 
        f"document.querySelectorAll('#feed li').length > {first_feed}", timeout=60_000
    )
    wait_for(page, 
        f"Number(document.getElementById('map').dataset.version) > {first_map['version']}",
        timeout=30_000,
    )
    page.wait_for_timeout(2500)  # cars move between two location updates
    assert canvas_image(page) != first_image, "the map did not change while the city ran"
    assert page.locator("#feed li").count() > first_feed

    # Counters, drivers and consumer groups come from the ops overview.
    wait_for(page, 
        "[...document.querySelectorAll('#counters .counter .n')]"
        ".some(n => Number(n.textContent) > 0)",
        timeout=30_000,
    )
    assert page.locator("#drivers-table tbody tr").count() >= 1
    assert "dispatch" in page.locator("#groups-table").inner_text()
    assert page.locator("#overview-dot.ok").count() == 1
    assert page.locator("#stream-dot.ok").count() == 1

    # The run over time, from GET /v1/ops/history: counters since the start,
    # trips per minute, the events/s chart filled from the server's samples
    # (every 10 s), this gateway's routes.
    wait_for(page,
             "Number(document.querySelector('#run-counters [data-status=requested] .n')"
             "?.textContent) > 0")
    assert page.locator("#run-since").inner_text().startswith("since ")
    assert int(page.evaluate("document.getElementById('chart-outcomes').dataset.points")) >= 1
    wait_for(page,
             "document.querySelectorAll('#routes-table tbody td.num').length > 0"
             " && Number(document.getElementById('spark').dataset.points) >= 2")
    assert "/v1/driver/location" in page.locator("#routes-table").inner_text()

    # A trip from the feed (its oldest, so that the dispatcher has seen its
    # first events) opens its timeline with every event and its deliveries.
    link = page.locator("#feed li a.trip").last
    trip_id = link.get_attribute("data-trip")
    body = ""
    for _ in range(10):
        link.click()
        page.locator("#drawer").wait_for(state="visible")
        wait_for(page, 
            "document.querySelectorAll('#drawer-body .timeline > li').length > 0",
            timeout=15_000,
        )
        body = page.locator("#drawer-body").inner_text()
        if "dispatch" in body:
            break
        page.wait_for_timeout(500)
    assert page.locator("#drawer-title").inner_text() == trip_id
    assert "trip.requested" in body and "dispatch" in body, body
    # The drawer tells the trip: who rode, who drove, what it cost, where; the
    # map rings it.
    for label in ("rider", "driver", "product", "fare", "pickup", "drop-off", "rating"):
        assert f"{label}\n" in body, body
    assert page.evaluate("document.getElementById('map').dataset.selected") == trip_id
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert page.evaluate("document.getElementById('map').dataset.source") == "overview"
    # One GET of the trip opened in the drawer; the map never rebuilds from them.
    assert not [u for u in page.requests if RECONSTRUCTION.search(u) and trip_id not in u]
    assert not page.errors, page.errors


def test_without_a_token_the_dashboard_asks_to_sign_in(demo_system, page):
    page.goto(f"{demo_system.url}/")
    page.locator("#login").wait_for(state="visible")
    page.fill("input[name=user_name]", "ops")
    page.fill("input[name=password]", "wrong-password")
    page.click("#login-form button[type=submit]")
    wait_for(page, "document.getElementById('login-error').textContent.length > 0")
    page.fill("input[name=password]", "ops-password-for-tests")
    page.click("#login-form button[type=submit]")
    page.locator("#login").wait_for(state="hidden")
    wait_for(page, "document.getElementById('overview-dot').classList.contains('ok')")
    # 401 from the failed sign-in is the only console error a browser reports.
    assert all("401" in e for e in page.errors), page.errors


def test_the_api_explorer_signs_in_and_calls_the_api_from_the_page(demo_system, page):
    """GET /docs: Swagger UI on the served document, files from the gateway
    alone; signing in on the page makes "Execute" carry the bearer token."""
    page.goto(f"{demo_system.url}/docs")
    wait_for(page, "document.querySelectorAll('.opblock').length >= 30")
    page.fill("#user", OPS["user_name"])
    page.fill("#password", OPS["password"])
    page.click("#signin button[type=submit]")
    page.wait_for_selector("#who.ok", timeout=10_000)
    assert "ops" in page.inner_text("#who")
    # Open GET /v1/me and execute it from the page: 200 with the ops profile.
    page.locator(".opblock-get .opblock-summary-path[data-path='/v1/me']").first.click()
    page.locator(".opblock.is-open button.execute").first.click()
    status = page.locator(".opblock.is-open .live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=10_000)
    assert status.inner_text().strip() == "200", page.inner_text(".opblock.is-open")
    origin = demo_system.url
    assert all(url.startswith(origin) for url in page.requests), page.requests
    assert page.errors == [], "\n".join(page.errors + page.requests)
