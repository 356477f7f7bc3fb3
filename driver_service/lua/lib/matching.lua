-- The matching rules that must hold atomically (driver_service/matching.py
-- holds the rest, and the reasons): which waiting trips are within reach of
-- a driver, and which of them comes first. A trip *waits* while requested
-- without an open offer: exactly then its pickup is in `pickups:<product>`.
-- After the trip and driver libraries (driver_available is the driver's).

-- Metres between two points (the earth radius of common.geo.haversine_m).
local function haversine_m(lat1, lon1, lat2, lon2)
  local r = math.pi / 180
  local dlat = (lat2 - lat1) * r
  local dlon = (lon2 - lon1) * r
  local a = math.sin(dlat / 2) ^ 2
    + math.cos(lat1 * r) * math.cos(lat2 * r) * math.sin(dlon / 2) ^ 2
  return 2 * 6371008.8 * math.asin(math.min(1, math.sqrt(a)))
end

-- Rank order, at the offer: the first trip requested before `t` (among the
-- `limit` oldest) that waits within `radius` of the driver, and is not in
-- `ignore` (trips the caller found the driver refused), or nil.
local function older_waiting(t, d, pending_key, pickups_key, radius, limit, ignore)
  local older = redis.call('ZRANGEBYSCORE', pending_key, '-inf', '(' .. t.requested_ms,
    'LIMIT', 0, limit)
  for _, oid in ipairs(older) do
    if not ignore[oid] then
      local pos = redis.call('GEOPOS', pickups_key, oid)[1]
      if pos and haversine_m(d.location.lat, d.location.lon,
          tonumber(pos[2]), tonumber(pos[1])) <= radius then
        return oid
      end
    end
  end
  return nil
end

-- Rank order, around a driver who became available: the oldest trips
-- waiting within `radius` of a point, the ranking read oldest first in
-- chunks, at most `scan` entries of it (the cost does not grow with the
-- queue); fewer than `want` may come back when the oldest wait elsewhere.
-- Returns the ids and whether the whole ranking was read.
local function waiting_near(pending_key, pickups_key, lat, lon, radius, want, scan)
  local out = {}
  local start = 0
  local complete = false
  while #out < want and start < scan do
    local last = math.min(start + 127, scan - 1)
    local ids = redis.call('ZRANGE', pending_key, start, last)
    if #ids < last - start + 1 then complete = true end
    if #ids == 0 then break end
    local pos = redis.call('GEOPOS', pickups_key, unpack(ids))
    for i, id in ipairs(ids) do
      local p = pos[i]
      if p and haversine_m(lat, lon, tonumber(p[2]), tonumber(p[1])) <= radius then
        out[#out + 1] = id
        if #out >= want then break end
      end
    end
    start = start + #ids
  end
  return out, complete
end
