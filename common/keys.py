"""Every Redis key, stream and group name of the system, in one place.

Keys of a region carry the hash tag `{region}`: on Redis Cluster all keys of a
region live in one slot, so each atomic step (a Lua script) touches one slot,
and regions spread over the shards. See docs/internals.md for the owners.
"""

from __future__ import annotations

from .ids import region_of

PREFIX = "rh"
from .fares import PRODUCTS  # noqa: E402,F401  (defined once, with the fares)

# Grouped by the service that owns the keys (the ACL user allowed to write
# them, common/acl.py), then the keys every service shares: the region's
# event stream and what its consumer groups keep beside it.


def tag(region: str) -> str:
    return f"{PREFIX}:{{{region}}}"


# --- trip_service: trips, riders, the ranking of requested trips ----------
# driver_service performs the driver-side transitions on the same keys.
GROUP_ARCHIVE = "archive"


def trip(trip_id: str) -> str:
    return f"{tag(region_of(trip_id))}:trip:{trip_id}"


def trip_events(trip_id: str) -> str:
    return f"{tag(region_of(trip_id))}:trip:{trip_id}:events"


def pending(region: str, product: str) -> str:
    return f"{tag(region)}:pending:{product}"


def rider_trips(rider_id: str) -> str:
    return f"{tag(region_of(rider_id))}:rider:{rider_id}:trips"


def rider_active(rider_id: str) -> str:
    return f"{tag(region_of(rider_id))}:rider:{rider_id}:active"


def demand(region: str, product: str) -> str:
    return f"{tag(region)}:demand:{product}"


def expiry_deadlines(region: str) -> str:
    return f"{tag(region)}:deadline:expiry"


def pickups(region: str, product: str) -> str:
    """GEO of the pickups of requested trips waiting without an open offer,
    to find the waiting trips near a driver who becomes available."""
    return f"{tag(region)}:pickups:{product}"


def trip_status_counts(region: str) -> str:
    """Hash status -> number of trips in it, kept by the transition scripts."""
    return f"{tag(region)}:trips:by_status"


def active_trips(region: str) -> str:
    """Sorted set of the trips requested, assigned, arrived or in progress,
    score = requested_at ms: the trip scripts add a trip when it is requested
    and remove it in the step that ends it (ops overview without a scan)."""
    return f"{tag(region)}:trips:active"


def archive_due(region: str) -> str:
    """Sorted set of finished trips, score = when each is due to go cold (its
    end + HOT_RETENTION_S), or a claimed one's lease end (trip_service/archiver)."""
    return f"{tag(region)}:archive:due"


# --- driver_service: drivers, where they are, their offers ----------------
GROUP_DISPATCH = "dispatch"
GROUP_DRIVER_STATS = "driver-stats"


def driver(driver_id: str) -> str:
    return f"{tag(region_of(driver_id))}:driver:{driver_id}"


def driver_trips(driver_id: str) -> str:
    return f"{tag(region_of(driver_id))}:driver:{driver_id}:trips"


def geo(region: str, product: str) -> str:
    return f"{tag(region)}:geo:{product}"


def supply(region: str, product: str) -> str:
    return f"{tag(region)}:supply:{product}"


def offers(driver_id: str) -> str:
    return f"{tag(region_of(driver_id))}:offers:{driver_id}"


def offer_deadlines(region: str) -> str:
    return f"{tag(region)}:deadline:offers"


def online_driver_counts(region: str) -> str:
    """Hash product -> number of online drivers, kept by the status scripts."""
    return f"{tag(region)}:drivers:online"


def online_driver_ids(region: str) -> str:
    """Sorted set of the online drivers, score = online since ms, kept by the
    status scripts (the positions of the ops overview without a scan)."""
    return f"{tag(region)}:drivers:online:ids"


def events_rate(region: str) -> str:
    """Sorted set of samples `<ms>:<entries-added>` of the region stream, score
    = ms, a minute of them: events per second shared by every process."""
    return f"{tag(region)}:events:rate"


# --- gateway: identity, sessions, idempotency, rate limits ----------------
# Owned by the gateway alone (gateway/identity.py, ratelimit.py, idempotency.py).
GW = "gw"


def account(user_name: str) -> str:
    """String (JSON): {subject_id, role, region, hash, state}; SET NX makes
    user names unique. The hash tag keeps each account in one slot."""
    return f"{GW}:account:{{{user_name}}}"


def subject(subject_id: str) -> str:
    """String (JSON): the profile the gateway owns."""
    return f"{GW}:subject:{subject_id}"


def session(token_hash: str) -> str:
    """Hash named by the SHA-256 of the token; its TTL is the sliding expiry."""
    return f"{GW}:session:{token_hash}"


def user_sessions(subject_id: str) -> str:
    """Sorted set of the digests of a user's sessions, score = their absolute
    expiry (ms): a password change ends them all, and a user holds a bounded
    number at once."""
    return f"{GW}:user-sessions:{subject_id}"


def idempotency(subject_id: str, key_hash: str) -> str:
    """String (JSON): an Idempotency-Key's record, 24 h."""
    return f"{GW}:idem:{subject_id}:{key_hash}"


def login_failures_user(user_name: str) -> str:
    """Sorted set of failure times (sliding 15-minute window)."""
    return f"{GW}:rl:login:user:{user_name}"


def login_failures_addr(addr: str) -> str:
    """Sorted set of failure times from one client address."""
    return f"{GW}:rl:login:addr:{addr}"


def login_failures_pair(user_name: str, addr: str) -> str:
    """Sorted set of failure times of one user name from one client address:
    the delay before that pair's next attempt grows with it."""
    return f"{GW}:rl:login:pair:{user_name}:{addr}"


def signups_addr(addr: str) -> str:
    """Sorted set of sign-up times from one client address (sliding window)."""
    return f"{GW}:rl:signup:addr:{addr}"


# --- shared: the region's event stream and its consumer groups ------------
# Every script that changes state appends to the stream; the groups' runner
# (common/streams) keeps dead letters, delivery records and idempotency marks.
# The groups whose idempotency marks (`seen`) an archived trip's events may have.
CONSUMER_GROUPS = (GROUP_DISPATCH, GROUP_DRIVER_STATS, GROUP_ARCHIVE)


def events(region: str) -> str:
    return f"{tag(region)}:events"


def dead_letters(region: str) -> str:
    return f"{tag(region)}:events:dead"


def deliveries(region: str, stream_id: str) -> str:
    return f"{tag(region)}:deliveries:{stream_id}"


def seen(region: str, group: str, event_id: str) -> str:
    return f"{tag(region)}:seen:{group}:{event_id}"


def stream_region(stream: str) -> str:
    """The region of a stream key built by `events()` or `dead_letters()`."""
    start = stream.index("{") + 1
    return stream[start : stream.index("}", start)]

