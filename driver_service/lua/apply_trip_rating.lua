-- trip.rated, for the driver-stats group: the driver's rating is the average
-- of the riders' stars. Counted once per event id.
-- KEYS: seen, driver. ARGV[4]: stars
if not first_time(KEYS[1]) then return {'ok', '', ''} end
local d = load_doc(KEYS[2])
if not d then return {'ok', '', ''} end
local stars = tonumber(ARGV[4])
local count = (tonumber(d.rating_count) or 0) + 1
local total = (tonumber(d.rating_sum) or 0) + stars
jset(KEYS[2], d, 'rating_count', count)
jset(KEYS[2], d, 'rating_sum', total)
jset(KEYS[2], d, 'rating', math.floor(total / count * 100 + 0.5) / 100)
return {'ok', '', ''}
