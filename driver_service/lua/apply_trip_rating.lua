-- trip.rated, for the driver-stats group: the driver's rating is the average
-- of the riders' stars. Counted once per event id.
if not first_time(K.seen) then return {'ok', '', ''} end
local d = load_doc(K.driver)
if not d then return {'ok', '', ''} end
local stars = tonumber(A.stars)
local count = (tonumber(d.rating_count) or 0) + 1
local total = (tonumber(d.rating_sum) or 0) + stars
jset(K.driver, d, 'rating_count', count)
jset(K.driver, d, 'rating_sum', total)
jset(K.driver, d, 'rating', math.floor(total / count * 100 + 0.5) / 100)
return {'ok', '', ''}
