-- Read-only: the oldest trips waiting within a radius of a point, in rank
-- order (waiting_near, lib/matching.lua). Returns {ids, complete}:
-- complete = 1 when the whole ranking was read.
local found, complete = waiting_near(K.pending, K.pickups, tonumber(A.lat), tonumber(A.lon),
  tonumber(A.radius_m), tonumber(A.wanted), tonumber(A.scanned))
return {found, complete and 1 or 0}
