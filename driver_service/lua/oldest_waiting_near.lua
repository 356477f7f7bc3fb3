-- Read-only. The oldest trips waiting without an open offer within a radius
-- of a point, in rank order: the ranking read oldest first, in chunks, each
-- trip's pickup from the pickups index (only waiting trips have one). At
-- most ARGV[8] entries of the ranking are read, so the cost does not grow
-- with the queue; fewer than asked may come back when the oldest trips wait
-- elsewhere. Returns {ids, complete}: complete = 1 when the whole ranking
-- was read (no younger trip was left unread).
-- KEYS: pending, pickups
-- ARGV[4]: lat, ARGV[5]: lon, ARGV[6]: radius (m), ARGV[7]: how many to
-- return, ARGV[8]: how many of the oldest to look at
local lat, lon = tonumber(ARGV[4]), tonumber(ARGV[5])
local radius, want, scan = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {}
local start = 0
local complete = 0
while #out < want do
  if start >= scan then
    break
  end
  local last = math.min(start + 127, scan - 1)
  local ids = redis.call('ZRANGE', KEYS[1], start, last)
  if #ids < last - start + 1 then
    complete = 1
  end
  if #ids == 0 then
    break
  end
  local pos = redis.call('GEOPOS', KEYS[2], unpack(ids))
  for i, id in ipairs(ids) do
    local p = pos[i]
    if p and haversine_m(lat, lon, tonumber(p[2]), tonumber(p[1])) <= radius then
      out[#out + 1] = id
      if #out >= want then
        break
      end
    end
  end
  start = start + #ids
end
return {out, complete}
