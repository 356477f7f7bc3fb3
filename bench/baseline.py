"""The matched baselines: bare aiohttp processes making the same hops and the
same Redis calls as the system's routes, with nothing else (no validation,
no auth logic, no scripts, no metrics, no middleware).

    python -m bench.baseline leaf    # PORT, REDIS_URL
    python -m bench.baseline front   # PORT, REDIS_URL, LEAF_A_URL, LEAF_B_URL

Routes of a leaf (the trip_service / driver_service stand-in):
- `GET /json/{key}`: one JSON.GET of the key, its bytes as the answer;
- `PUT /json/{key}`: one write (JSON.SET of the body at `$.location`), 204;
- `GET /get/{key}`: one GET of a string key.

Routes of the front (the gateway stand-in); the token is read from the
`Authorization` header and names a session hash that is read with HGETALL:
- `GET /view/{trip_key}/{driver_key}`: session read, then `GET /json/...` on
  both leaves at once; the two answers side by side (GET /v1/trips/{id});
- `PUT /location/{driver_key}`: session read, then `PUT /json/...` on leaf B
  with the body (PUT /v1/driver/location);
- `GET /chain/{key}`: no session, `GET /get/{key}` on leaf A (the plain
  two-hop chain: aiohttp -> aiohttp -> one Redis read).

The processes use the same client stack as the services (redis-py with
hiredis through `common.redisconn.create_redis`, one pooled aiohttp
ClientSession per upstream, uvloop), so the difference measured is our own
code, not the libraries.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
from aiohttp import web

from common.redisconn import create_redis

SESSION_PREFIX = "bench:session:"
REDIS = web.AppKey("redis", object)
UPSTREAMS = web.AppKey("upstreams", dict)


def session_key(token: str) -> str:
    return SESSION_PREFIX + token


async def _redis_ctx(app: web.Application):
    redis = create_redis(os.environ["REDIS_URL"])
    app[REDIS] = redis
    yield
    await redis.aclose()


# --- leaf ------------------------------------------------------------------

async def leaf_json_get(request: web.Request) -> web.Response:
    raw = await request.app[REDIS].execute_command("JSON.GET", request.match_info["key"])
    if raw is None:
        return web.Response(status=404)
    return web.Response(body=raw.encode(), content_type="application/json")


async def leaf_json_put(request: web.Request) -> web.Response:
    body = await request.read()
    await request.app[REDIS].execute_command(
        "JSON.SET", request.match_info["key"], "$.location", body.decode()
    )
    return web.Response(status=204)


async def leaf_get(request: web.Request) -> web.Response:
    raw = await request.app[REDIS].get(request.match_info["key"])
    if raw is None:
        return web.Response(status=404)
    return web.Response(body=raw.encode(), content_type="application/json")


def leaf_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_get("/json/{key:[^/]+}", leaf_json_get)
    app.router.add_put("/json/{key:[^/]+}", leaf_json_put)
    app.router.add_get("/get/{key:[^/]+}", leaf_get)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# --- front -----------------------------------------------------------------

async def _upstreams_ctx(app: web.Application):
    sessions = {}
    for name in ("a", "b"):
        connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30)
        sessions[name] = (
            aiohttp.ClientSession(connector=connector),
            os.environ[f"LEAF_{name.upper()}_URL"].rstrip("/"),
        )
    app[UPSTREAMS] = sessions
    yield
    for session, _ in sessions.values():
        await session.close()


async def _session(request: web.Request) -> dict | None:
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else header
    return await request.app[REDIS].hgetall(session_key(token))


async def _call(app: web.Application, leaf: str, method: str, path: str,
                data: bytes | None = None) -> tuple[int, bytes]:
    session, base = app[UPSTREAMS][leaf]
    async with session.request(method, base + path, data=data) as resp:
        return resp.status, await resp.read()


async def front_view(request: web.Request) -> web.Response:
    if not await _session(request):
        return web.Response(status=401)
    info = request.match_info
    (sa, a), (sb, b) = await asyncio.gather(
        _call(request.app, "a", "GET", f"/json/{info['trip_key']}"),
        _call(request.app, "b", "GET", f"/json/{info['driver_key']}"),
    )
    if sa != 200 or sb != 200:
        return web.Response(status=502)
    return web.Response(body=b'{"trip": ' + a + b', "driver": ' + b + b"}",
                        content_type="application/json")


async def front_location(request: web.Request) -> web.Response:
    if not await _session(request):
        return web.Response(status=401)
    body = await request.read()
    status, _ = await _call(request.app, "b", "PUT", f"/json/{request.match_info['key']}", body)
    return web.Response(status=204 if status == 204 else 502)


async def front_chain(request: web.Request) -> web.Response:
    status, body = await _call(request.app, "a", "GET", f"/get/{request.match_info['key']}")
    if status != 200:
        return web.Response(status=502)
    return web.Response(body=body, content_type="application/json")


def front_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_upstreams_ctx)
    app.router.add_get("/view/{trip_key:[^/]+}/{driver_key:[^/]+}", front_view)
    app.router.add_put("/location/{key:[^/]+}", front_location)
    app.router.add_get("/chain/{key:[^/]+}", front_chain)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    role = sys.argv[1]
    app = {"leaf": leaf_app, "front": front_app}[role]()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = None
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None,
                print=None, loop=loop, reuse_port=os.environ.get("REUSE_PORT") == "1")


if __name__ == "__main__":
    main()
