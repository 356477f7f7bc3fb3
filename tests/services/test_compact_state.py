"""The compact stored shapes: a trip's event list reads back as the events the
stream carried, a trip's request is one packed member that every reader
sees expanded, and documents written in the older, fuller shape (every field
at the top, nulls, empty lists, `region`, `requested_at`) still work."""

from __future__ import annotations

import orjson

from common import ids, keys
from common.events import trip_event_item, trip_event_items
from common.timeutil import iso
from common.trip.document import REQUEST_FIELDS, expand
from driver_service import document as driver_document

from tests.helpers.services import DROPOFF, near


async def _items(rig, trip_id: str) -> list[dict]:
    raw = await rig.redis.lrange(keys.trip_events(trip_id), 0, -1)
    return trip_event_items(raw, trip_id, await rig.doc(trip_id))


async def _stream(rig, trip_id: str) -> dict[str, dict]:
    return {e.pop("stream_id"): e for e in await rig.events() if e.get("trip_id") == trip_id}


async def test_event_list_reads_back_as_the_streamed_events(rig):
    # Coordinates with more digits than Lua's cjson writes (14 significant):
    # the event on the stream carries them rounded, and so must the replay.
    pickup = {"lat": 37.774912345678912, "lon": -122.41941234567891}
    trip = await rig.request(pickup)
    driver = await rig.new_driver(near(0.001))
    await rig.offered(driver)
    assert (await rig.decline(driver, trip["id"])).status == 204
    second = await rig.new_driver(near(0.002))
    await rig.offered(second)
    assert (await rig.accept(second, trip["id"])).status == 200
    for action in ("arrive", "start", "complete"):
        assert (await rig.act(second, trip["id"], action)).status == 200

    items = await _items(rig, trip["id"])
    streamed = await _stream(rig, trip["id"])
    assert [i["event"]["type"] for i in items] == [
        "trip.requested", "trip.offered", "trip.offer_declined", "trip.offered",
        "trip.assigned", "trip.driver_arrived", "trip.started", "trip.completed",
    ]
    for item in items:
        assert item["event"] == streamed[item["stream_id"]]
    requested = items[0]["event"]["data"]
    assert requested["pickup"] == {"lat": 37.774912345679, "lon": -122.41941234568}
    assert requested["requested_at"] == trip["requested_at"]

    # The stored element holds neither the trip id nor the request.
    raw = (await rig.redis.lrange(keys.trip_events(trip["id"]), 0, 0))[0]
    assert trip["id"] not in raw and "pickup" not in raw and len(raw) < 160

    # The timeline and the replay list serve the same envelopes.
    body = await (await rig.trips.get(f"/internal/trips/{trip['id']}/timeline")).json()
    assert [e["id"] for e in body["events"]] == [i["event"]["id"] for i in items]
    assert body["events"][0]["data"] == requested
    replay = await (await rig.trips.get(f"/internal/trips/{trip['id']}/events")).json()
    assert replay["items"] == items


async def test_a_whole_surge_reads_as_the_stream_wrote_it(rig):
    trip = await rig.request(near())
    item = (await _items(rig, trip["id"]))[0]
    streamed = (await _stream(rig, trip["id"]))[item["stream_id"]]
    assert item["event"]["data"]["surge"] == streamed["data"]["surge"]
    assert orjson.dumps(item["event"]["data"]["surge"]) == orjson.dumps(
        streamed["data"]["surge"])


def test_an_element_of_the_older_shape_reads_unchanged():
    env = {"id": "01M982KQS7D8V9F40QE2EA5DNM", "type": "trip.cancelled", "version": 1,
           "occurred_at": "2026-12-07T11:00:51.111Z", "producer": "trip_service",
           "trace_id": "2b5f9efd26ed7adcabb491bdc7a6bc6d", "trip_id": "trp_sf_x",
           "data": {"cancelled_by": "rider"}}
    raw = orjson.dumps({"stream_id": "1796641251111-0", "event": env})
    assert trip_event_item(raw, "trp_sf_x", None) == {"stream_id": "1796641251111-0",
                                                       "event": env}
    assert trip_event_item(raw.decode(), "trp_sf_x", None)["event"] == env


async def test_documents_of_the_older_shape_still_work(rig):
    """A Redis upgraded in place holds documents with every member: they are
    read, offered, refused, accepted and rendered as before."""
    trip = await rig.request(near())
    doc = await rig.doc(trip["id"])
    assert "offer" not in doc and "refused" not in doc and "region" not in doc
    assert isinstance(doc["request"], str) and "pickup" not in doc
    # Every field at the top, as documents were written before.
    older = {**expand(doc), "region": "sf", "requested_at": iso(doc["requested_ms"]),
             "refused": [], "offer": None}
    assert "request" not in older and older["pickup"] == trip["pickup"]
    await rig.redis.execute_command("JSON.SET", keys.trip(trip["id"]), "$",
                                    orjson.dumps(older).decode())
    d1 = await rig.new_driver(near(0.001), online=False)
    d_doc = await rig.driver_doc(d1)
    await rig.redis.execute_command("JSON.SET", keys.driver(d1), "$", orjson.dumps({
        **driver_document.expand(d_doc), "region": "sf", "rating": None, "rating_count": 0, "rating_sum": 0,
        "offer": None, "trip_id": None, "supply_cell": None,
    }).decode())
    await rig.status(d1, "online")
    await rig.offered(d1)
    assert (await rig.decline(d1, trip["id"])).status == 204
    assert (await rig.doc(trip["id"]))["refused"] == [d1]
    d2 = await rig.new_driver(near(0.002))
    await rig.offered(d2)
    assert (await rig.accept(d2, trip["id"])).status == 200
    view = await rig.trip(trip["id"])
    assert view["status"] == "assigned" and view["requested_at"] == trip["requested_at"]
    assert {k: view[k] for k in REQUEST_FIELDS} == {k: trip[k] for k in REQUEST_FIELDS}
    # Its timeline's request event reads the request from the top.
    body = await (await rig.trips.get(f"/internal/trips/{trip['id']}/timeline")).json()
    assert body["events"][0]["data"]["pickup"] == trip["pickup"]
    driver = await rig.driver(d1)
    assert driver["region"] == "sf" and driver["rating"] is None and driver["ratings"] == 0
    assert driver["available"] is True and driver["first_name"] == "Dee"
    assert driver["registered_at"] == orjson.loads(d_doc["profile"])["registered_at"]


async def test_new_documents_hold_no_null_or_derivable_member(rig):
    trip = await rig.request(near(), rider_id=ids.new_id(ids.RIDER, "sf"))
    doc = await rig.doc(trip["id"])
    assert None not in doc.values()
    assert not {"region", "requested_at", "refused", "offer", *REQUEST_FIELDS} & doc.keys()
    assert len(doc) <= 8
    view = await rig.trip(trip["id"])
    assert view["requested_at"] == iso(doc["requested_ms"])
    assert view["dropoff"] == DROPOFF
    assert {k: view[k] for k in REQUEST_FIELDS} == orjson.loads(doc["request"])
    driver_id = await rig.new_driver(near(0.001))
    d = await rig.driver_doc(driver_id)
    assert None not in d.values() and "region" not in d and len(d) <= 8
    assert not {"first_name", "last_name", "car", "registered_at"} & d.keys()
    view = await rig.driver(driver_id)
    assert view["region"] == "sf" and view["first_name"] == "Dee"
    assert view["car"]["plate"] == "7ABC123" and view["registered_at"].endswith("Z")
    # Registering again with the same details is the same driver.
    r = await rig.drivers.post("/internal/drivers", json={
        "driver_id": driver_id, "first_name": "Dee", "last_name": "Driver",
        "car": view["car"], "product": "standard"})
    assert r.status == 200, await r.text()
    r = await rig.drivers.post("/internal/drivers", json={
        "driver_id": driver_id, "first_name": "Other", "last_name": "Driver",
        "car": view["car"], "product": "standard"})
    assert r.status == 409, await r.text()
