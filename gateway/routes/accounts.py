"""Accounts, sessions and the caller's profile."""

from __future__ import annotations

import logging

from aiohttp import web

from common import errors
from common.ids import DRIVER, RIDER, new_id
from common.timeutil import iso, now_ms

from .. import models, serializers
from ..passwords import problems as password_problems
from ..api import ANY_ROLE, Api, Call, Response
from .shared import json

logger = logging.getLogger(__name__)

api = Api()


SIGNUP_LIMITS = (
    "A taken user name is a 409 at once. At most SIGNUPS_PER_ADDR sign-ups per client "
    "address within SIGNUP_WINDOW_S (429 with Retry-After); 503 with Retry-After while the "
    "gateway's password-hashing queue is full (HASH_QUEUE_MAX)."
)


def client_address(call: Call) -> str:
    return call.deps.client_addr.of(call.request)


def _region(call: Call, requested: str | None) -> str:
    return requested or call.deps.settings.default_region.name


@api.route(
    "POST",
    "/v1/riders",
    summary="Sign up as a rider",
    tags="accounts",
    roles=None,
    body=models.RiderSignup,
    responses={201: Response("The rider's profile (never the password).", models.RiderProfile)},
    errors=(409, 429, 503),
    description=SIGNUP_LIMITS,
)
async def create_rider(call: Call) -> web.Response:
    body: models.RiderSignup = call.body
    identity = call.deps.identity
    await identity.check_name_free(body.user_name)
    await call.deps.limiter.check_signup(client_address(call))
    region = _region(call, body.region)
    rider_id = new_id(RIDER, region)
    profile = {
        "id": rider_id,
        "role": "rider",
        "user_name": body.user_name,
        "first_name": body.first_name,
        "last_name": body.last_name,
        "email": body.email,
        "age": body.age,
        "bio": body.bio,
        "region": region,
        "created_at": iso(now_ms()),
    }
    # The profile first: until the account exists nobody can reach it, and a
    # lost race for the user name only leaves a profile to delete.
    await identity.save_profile(profile)
    try:
        await identity.reserve_account(body.user_name, rider_id, "rider", region, body.password)
    except BaseException:
        await identity.discard_profile(rider_id)
        raise
    return json(serializers.rider_profile(profile), status=201)


@api.route(
    "POST",
    "/v1/drivers",
    summary="Sign up as a driver",
    tags="accounts",
    roles=None,
    body=models.DriverSignup,
    responses={
        201: Response("The driver's profile, `status: offline`.", models.DriverProfile)
    },
    errors=(409, 429, 503, 504),
    description="Creates the account and the driver in driver_service. If driver_service "
    "fails, the account is removed again (no half-created account) and the answer is "
    "503 or 504; retry the sign-up. " + SIGNUP_LIMITS,
)
async def create_driver(call: Call) -> web.Response:
    body: models.DriverSignup = call.body
    identity = call.deps.identity
    await identity.check_name_free(body.user_name)
    await call.deps.limiter.check_signup(client_address(call))
    region = _region(call, body.region)
    driver_id = new_id(DRIVER, region)
    # Pending until driver_service has the driver: it cannot log in meanwhile,
    # and the record expires by itself if this process dies half-way.
    await identity.reserve_account(
        body.user_name, driver_id, "driver", region, body.password, pending=True
    )
    profile = {
        "id": driver_id,
        "role": "driver",
        "user_name": body.user_name,
        "first_name": body.first_name,
        "last_name": body.last_name,
        "email": body.email,
        "region": region,
        "created_at": iso(now_ms()),
    }
    try:
        reply = await call.deps.upstreams.drivers.call(
            "POST",
            "/internal/drivers",
            json={
                "driver_id": driver_id,
                "first_name": body.first_name,
                "last_name": body.last_name,
                "car": body.car.model_dump(),
                "product": body.product,
            },
            # The id is ours, so a repeated create names the same driver.
            idempotent=True,
        )
        await identity.save_profile(profile)
        if not await identity.activate_account(body.user_name, driver_id):
            raise errors.Unavailable(
                "The sign-up took too long to complete; retry it.",
                headers={"Retry-After": "1"},
            )
    except BaseException:
        logger.warning("driver sign-up of %s failed; removing the account", body.user_name)
        await identity.abandon_account(body.user_name, driver_id)
        raise
    return json(serializers.driver_profile(profile, reply.body or {}), status=201)


@api.route(
    "POST",
    "/v1/sessions",
    summary="Log in",
    tags="accounts",
    roles=None,
    body=models.Login,
    responses={201: Response("A new session.", models.Session)},
    errors=(401, 429, 503),
    description="Unknown user and wrong password give the same 401. After "
    "LOGIN_FAILURES_LIMIT failed logins for one user name within 15 minutes, a client "
    "address that failed on it gets 429 with Retry-After until enough failures age out; "
    "an address that has not failed on it still logs in with the right password (its "
    "first wrong guess locks it too). One address is limited at ten times "
    "LOGIN_FAILURES_LIMIT failures over all names. Successful logins are never limited.",
)
async def create_session(call: Call) -> web.Response:
    body: models.Login = call.body
    deps = call.deps
    addr = client_address(call)
    await deps.limiter.check_login(body.user_name, addr)
    account = await deps.identity.check_credentials(body.user_name, body.password)
    session = None
    if account is not None:
        session = await deps.identity.create_session(body.user_name, account)
    if session is None:
        await deps.limiter.login_failed(body.user_name, addr)
        raise errors.Unauthorized("Unknown user name or wrong password.")
    return json(session.as_dict(), status=201, headers={"Cache-Control": "no-store"})


@api.route(
    "PUT",
    "/v1/me/password",
    summary="Change the password",
    tags="accounts",
    roles=("rider", "driver"),
    body=models.PasswordChange,
    responses={
        204: Response(
            "Changed; every session of the account has ended, this one included: log in "
            "again with the new password.",
            None,
            content_type="",
        )
    },
    errors=(401, 422, 429, 503),
    description="`current_password` wrong is a 401 and counts as a failed login of the "
    "account from this client address (the same limits as POST /v1/sessions). The new "
    "password follows the sign-up policy.",
)
async def change_password(call: Call) -> web.Response:
    body: models.PasswordChange = call.body
    deps = call.deps
    caller = call.caller
    problem = password_problems(body.new_password, caller.user_name)
    if problem:
        raise errors.Invalid(
            "The new password is refused.",
            errors=[{"field": "new_password", "message": problem}],
        )
    addr = client_address(call)
    await deps.limiter.check_login(caller.user_name, addr)
    if not await deps.identity.change_password(
        caller, body.current_password, body.new_password
    ):
        await deps.limiter.login_failed(caller.user_name, addr)
        raise errors.Unauthorized(
            "The current password is wrong.",
            errors=[{"field": "current_password", "message": "is wrong"}],
        )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


@api.route(
    "DELETE",
    "/v1/sessions/current",
    summary="Log out",
    tags="accounts",
    roles=ANY_ROLE,
    responses={204: Response("The token stopped working.", None, content_type="")},
)
async def delete_session(call: Call) -> web.Response:
    await call.deps.identity.revoke(call.caller)
    return web.Response(status=204)


async def profile_of(call: Call) -> dict:
    caller = call.caller
    profile = await call.deps.identity.profile(caller.subject_id)
    if profile is None:
        raise errors.NotFound("The account's profile no longer exists.")
    if caller.role != "driver":
        return serializers.rider_profile(profile)
    reply = await call.deps.upstreams.drivers.get(f"/internal/drivers/{caller.subject_id}")
    return serializers.driver_profile(profile, reply.body or {})


@api.route(
    "GET",
    "/v1/me",
    summary="The caller's profile",
    tags="accounts",
    roles=ANY_ROLE,
    responses={
        200: Response(
            "A rider's, driver's (with car, product, status, rating) or ops profile.",
            (models.RiderProfile, models.DriverProfile, models.OpsProfile),
        )
    },
    errors=(503, 504),
)
async def get_me(call: Call) -> web.Response:
    return json(await profile_of(call))

