"""Identity, owned by the gateway: accounts, credentials, profiles, sessions.

Storage (all under `gw:`, see common/keys.py):
- `gw:account:{user_name}`: JSON string `{subject_id, role, region, hash,
  state}`; created with SET NX, which makes user names unique atomically.
  A driver's account is `pending` (with a TTL) until driver_service has
  created the driver document, and only then `active`: login treats a pending
  account as unknown, and a gateway that dies mid-sign-up leaves nothing
  behind once the TTL runs out.
- `gw:subject:<id>`: JSON string, the profile the gateway owns (names, e-mail,
  age, bio, region). A driver's car, product, status and rating belong to
  driver_service.
- `gw:session:<sha256 of the token>`: hash `{subject_id, role, region,
  user_name, created_at, max_exp}`. Only the digest is stored, so a copy of
  the database yields no usable token. The key's TTL is the sliding expiry;
  `max_exp` the absolute limit. Logout deletes it.

Hashing is argon2id in a small thread pool: a hash takes tens of
milliseconds of CPU and would otherwise stall every request on the loop.

Under `WAIT_REPLICAS=n` > 0 each write a client sees acknowledged waits
until `n` replicas have it in their AOF, on the write's own connection
(common.scripts.write_and_wait), else 503: a sign-up's profile and account
(a driver's at activation), a login's session, a logout's deletion. Not
waited for: undoing a failed sign-up, the ops account at start, a password
rehash at login, and the per-request session script (sliding expiry and
rate-limit bucket: no client write is acknowledged by them).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from common import errors, keys
from common.scripts import require_replicas, write_and_wait
from common.timeutil import iso, now_ms

from . import scripts as S
from .config import GatewaySettings
from .passwords import Hasher
from .scripts import GatewayScripts

logger = logging.getLogger(__name__)

# A session's sliding expiry is rewritten when it moves by at least this part
# of SESSION_TTL_S (36 s of an hour): reading a session then writes nothing.
SLIDE_MIN_FRACTION = 0.01
# A pending driver account outlives any sign-up attempt (upstream timeout x retries).
PENDING_ACCOUNT_TTL_S = 120
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
# Sessions one user holds at once; a login past it ends the oldest.
SESSIONS_PER_USER = 100

def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    subject_id: str
    role: str
    region: str
    user_name: str
    token_hash: str
    expires_at_ms: int
    # Tokens this request took from the session's rate-limit bucket (the
    # gateway keeps the ones it did not need), and when none: the
    # milliseconds until the bucket has one again.
    tokens_taken: int = 1
    rate_wait_ms: int = 0


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    role: str
    subject_id: str
    expires_at_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "role": self.role,
            "subject_id": self.subject_id,
            "expires_at": iso(self.expires_at_ms),
        }


def taken() -> errors.Conflict:
    return errors.Conflict(
        "This user name is taken.",
        errors=[{"field": "user_name", "message": "is taken"}],
    )


class Identity:
    def __init__(
        self, redis, scripts: GatewayScripts, hasher: Hasher, settings: GatewaySettings
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.hasher = hasher
        self.settings = settings

    @property
    def replicas(self) -> int:
        """WAIT_REPLICAS: the replicas an acknowledged write must be on (0: none)."""
        return self.settings.wait_replicas

    async def _write_and_wait(self, key: str, command: tuple) -> tuple[object, object]:
        """A write on `key` (WAIT_REPLICAS > 0) with WAIT and WAITAOF behind
        it on its connection: its reply; a command error raised as it is.
        The caller checks the wait when the command wrote."""
        reply, waited = await write_and_wait(self.redis, key, command, self.replicas)
        if isinstance(reply, Exception):
            raise reply
        return reply, waited

    # -- accounts ------------------------------------------------------------
    async def reserve_account(
        self, user_name: str, subject_id: str, role: str, region: str, password: str,
        *, pending: bool = False,
    ) -> None:
        """Take the user name for a new account, or raise Conflict.

        Under WAIT_REPLICAS an active account is confirmed on the replicas,
        else removed again and 503 (the retry signs up afresh). A pending one
        is not: nobody can use it, and its activation (the same key, later
        on the same primary) is confirmed."""
        key = keys.account(user_name)
        await self.check_name_free(user_name)
        record = {
            "subject_id": subject_id,
            "role": role,
            "region": region,
            "hash": await self.hasher.hash(password),
            "state": "pending" if pending else "active",
        }
        if self.replicas <= 0 or pending:
            created = await self.redis.set(
                key,
                orjson.dumps(record),
                nx=True,
                ex=PENDING_ACCOUNT_TTL_S if pending else None,
            )
            waited = None
        else:
            created, waited = await self._write_and_wait(
                key, ("SET", key, orjson.dumps(record), "NX")
            )
        if not created:
            raise taken()
        if waited is not None:
            try:
                require_replicas(waited, self.replicas)
            except errors.Unavailable:
                # Written, not confirmed: not an account the client was given.
                await self.scripts.call(S.ACCOUNT_CAS, S.AccountKeys.of(user_name),
                                        S.AccountCasArgs(subject_id=subject_id, value=""))
                raise

    async def check_name_free(self, user_name: str) -> None:
        """409 for a taken name, before any expensive part of a sign-up (the
        hash): the SET NX of the account still settles a race for a free name."""
        if await self.redis.get(keys.account(user_name)) is not None:
            raise taken()

    async def activate_account(self, user_name: str, subject_id: str) -> bool:
        raw = await self.redis.get(keys.account(user_name))
        if raw is None:
            return False
        record = orjson.loads(raw)
        record["state"] = "active"
        args = S.AccountCasArgs(subject_id=subject_id, value=orjson.dumps(record))
        if self.replicas <= 0:
            return await self.scripts.call(S.ACCOUNT_CAS, S.AccountKeys.of(user_name), args)
        done, waited = await self.scripts.call_and_wait(
            S.ACCOUNT_CAS, S.AccountKeys.of(user_name), args, self.replicas
        )
        if done:  # 0: nothing written (not ours, or gone), nothing to confirm
            require_replicas(waited, self.replicas)
        return done

    async def abandon_account(self, user_name: str, subject_id: str) -> None:
        """Undo a sign-up that failed half-way; only our own record is removed.
        Never waits for replicas: it answers an error, acknowledges nothing."""
        await self.scripts.call(S.ACCOUNT_CAS, S.AccountKeys.of(user_name),
                                S.AccountCasArgs(subject_id=subject_id, value=""))
        await self.discard_profile(subject_id)

    async def save_profile(self, profile: dict[str, Any], *, confirm: bool = True) -> None:
        """Store a profile; under WAIT_REPLICAS (and `confirm`) 503 unless the
        replicas have it. The profile has its own key, on a cluster perhaps
        on another shard than the account: confirmed by itself."""
        key = keys.subject(profile["id"])
        if self.replicas <= 0 or not confirm:
            await self.redis.set(key, orjson.dumps(profile))
            return
        _, waited = await self._write_and_wait(key, ("SET", key, orjson.dumps(profile)))
        require_replicas(waited, self.replicas)

    async def discard_profile(self, subject_id: str) -> None:
        # The undo of a failed sign-up: acknowledges nothing, never waits.
        await self.redis.delete(keys.subject(subject_id))

    async def profile(self, subject_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.subject(subject_id))
        return orjson.loads(raw) if raw else None

    async def account(self, user_name: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.account(user_name))
        return orjson.loads(raw) if raw else None

    async def ensure_ops(self, user_name: str, password: str) -> None:
        """Create or update the ops account from the configuration at start."""
        existing = await self.account(user_name)
        subject_id = f"ops_{user_name}"
        if existing is not None and existing.get("role") != "ops":
            logger.error(
                "OPS_USER_NAME %r is the user name of a %s account; no ops account created",
                user_name,
                existing.get("role"),
            )
            return
        if existing is not None and await self.hasher.verify(existing.get("hash"), password):
            return
        record = {
            "subject_id": subject_id,
            "role": "ops",
            "region": "",
            "hash": await self.hasher.hash(password),
            "state": "active",
        }
        # At start, for no client: no wait for replicas (a lagging replica
        # must not keep the gateway from starting).
        await self.save_profile(
            {"id": subject_id, "role": "ops", "user_name": user_name, "created_at": iso(now_ms())},
            confirm=False,
        )
        await self.redis.set(keys.account(user_name), orjson.dumps(record))
        logger.info("ops account %r ready", user_name)

    # -- sessions ------------------------------------------------------------
    async def check_credentials(self, user_name: str, password: str) -> dict[str, Any] | None:
        """The account if the password matches, else None (same work either way)."""
        account = await self.account(user_name)
        usable = account is not None and account.get("state") == "active"
        ok = await self.hasher.verify(account["hash"] if usable else None, password)
        if not (ok and usable):
            return None
        if self.hasher.needs_rehash(account["hash"]):
            account["hash"] = await self.hasher.hash(password)
            # Not waited for: acknowledged to nobody, and the old hash, if
            # the new one were lost, still verifies the same password.
            await self.scripts.call(
                S.ACCOUNT_CAS, S.AccountKeys.of(user_name),
                S.AccountCasArgs(subject_id=account["subject_id"], value=orjson.dumps(account)),
            )
        return account

    async def create_session(
        self, user_name: str, account: dict[str, Any]
    ) -> NewSession | None:
        """A new session. Under WAIT_REPLICAS its token is returned only once
        the replicas have the session (a failover then keeps the login),
        else 503 and the session is removed (its token was never given)."""
        token = secrets.token_urlsafe(32)
        session_keys = S.SessionKeys.of(token_digest(token))
        key = session_keys.session
        args = S.SessionCreateArgs(
            subject_id=account["subject_id"],
            role=account["role"],
            region=account.get("region") or "",
            user_name=user_name,
            ttl_ms=self.settings.session_ttl_s * 1000,
            max_ms=self.settings.session_max_s * 1000,
        )
        if self.replicas <= 0:
            expires = await self.scripts.call(S.SESSION_CREATE, session_keys, args)
            await self._index_session(account["subject_id"], token_digest(token))
        else:
            expires, waited = await self.scripts.call_and_wait(
                S.SESSION_CREATE, session_keys, args, self.replicas
            )
            try:
                require_replicas(waited, self.replicas)
            except errors.Unavailable:
                await self.redis.delete(key)
                raise
            await self._index_session(account["subject_id"], token_digest(token))
        # A password changed while this login was checked ends the session at
        # once: it was granted on the old password.
        current = await self.account(user_name)
        if current is None or current.get("hash") != account.get("hash"):
            await self.redis.delete(key)
            return None
        return NewSession(token, account["role"], account["subject_id"], expires)

    async def _index_session(self, subject_id: str, digest: str) -> None:
        """Note the session under its user (a password change ends them all);
        forget the expired ones and end the oldest past SESSIONS_PER_USER."""
        index = keys.user_sessions(subject_id)
        now = now_ms()
        max_exp = now + self.settings.session_max_s * 1000
        await self.redis.zadd(index, {digest: max_exp})
        await self.redis.zremrangebyscore(index, "-inf", now)
        await self.redis.pexpireat(index, max_exp)
        surplus = await self.redis.zcard(index) - SESSIONS_PER_USER
        if surplus > 0:
            oldest = await self.redis.zrange(index, 0, surplus - 1)
            for old in oldest:
                await self.redis.delete(keys.session(old))
            await self.redis.zrem(index, *oldest)

    async def end_sessions(self, subject_id: str) -> int:
        """End every session of a user (a password change): how many there were."""
        index = keys.user_sessions(subject_id)
        digests = await self.redis.zrange(index, 0, -1)
        for digest in digests:
            await self.redis.delete(keys.session(digest))
        await self.redis.delete(index)
        return len(digests)

    async def change_password(
        self, principal: Principal, current: str, new: str
    ) -> bool:
        """Set a new password if `current` is right (False if not), then end
        every session of the user, this one included."""
        account = await self.account(principal.user_name)
        if account is None or account.get("subject_id") != principal.subject_id:
            return False
        if not await self.hasher.verify(account.get("hash"), current):
            return False
        updated = {**account, "hash": await self.hasher.hash(new)}
        args = S.AccountCasArgs(subject_id=principal.subject_id, value=orjson.dumps(updated))
        account_keys = S.AccountKeys.of(principal.user_name)
        if self.replicas <= 0:
            done = await self.scripts.call(S.ACCOUNT_CAS, account_keys, args)
        else:
            done, waited = await self.scripts.call_and_wait(S.ACCOUNT_CAS, account_keys, args,
                                                            self.replicas)
            if done:
                require_replicas(waited, self.replicas)
        if not done:
            raise errors.Conflict("The account changed meanwhile; retry.")
        await self.end_sessions(principal.subject_id)
        return True

    async def authenticate(
        self, token: str, rate: float = 0.0, burst: float = 0.0, take: int = 1
    ) -> Principal | None:
        """The session of a token, its expiry slid; with `rate` > 0, up to
        `take` tokens taken from its bucket in the same step (see
        `Principal.tokens_taken`). The expiry is written only when it moves by
        at least SLIDE_MIN_FRACTION of the TTL, so most requests write nothing."""
        if not _TOKEN.match(token):
            return None
        digest = token_digest(token)
        ttl_ms = self.settings.session_ttl_s * 1000
        # Never waits for replicas, even under WAIT_REPLICAS: it mostly writes
        # nothing, and what it writes (the sliding expiry, the rate-limit
        # bucket) is no client write the gateway acknowledges; lost in a
        # failover, a session expires a little earlier or a bucket refills.
        found = await self.scripts.call(
            S.SESSION_TOUCH, S.SessionKeys.of(digest),
            S.SessionTouchArgs(ttl_ms=ttl_ms, rate=rate, burst=burst, take=take,
                               min_move_ms=int(ttl_ms * SLIDE_MIN_FRACTION)),
        )
        if found is None:
            return None
        return Principal(found.subject_id, found.role, found.region, found.user_name, digest,
                         found.expires_ms, found.taken, found.wait_ms)

    async def revoke(self, principal: Principal) -> None:
        """Log out. Under WAIT_REPLICAS the 204 waits until the replicas have
        the deletion (else 503: the token may still work after a failover)."""
        key = keys.session(principal.token_hash)
        if self.replicas <= 0:
            await self.redis.delete(key)
            return
        deleted, waited = await self._write_and_wait(key, ("DEL", key))
        # 0: already gone (a concurrent logout, which confirms its own
        # deletion, or the session's expiry): nothing written here.
        if deleted:
            require_replicas(waited, self.replicas)
