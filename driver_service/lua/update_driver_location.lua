-- A location fix: the document, and the GEO index and supply cell while
-- available. Not an event (too frequent for the durable stream).
-- KEYS: driver, geo, supply, offers
-- ARGV[4]: lat, ARGV[5]: lon, ARGV[6]: heading (''), ARGV[7]: speed_mps (''),
-- ARGV[8]: surge cell
local dk = {driver = KEYS[1], geo = KEYS[2], supply = KEYS[3], offers = KEYS[4]}
local d = load_doc(KEYS[1])
if not d then return reply_err('not_found', 'no such driver') end
local was = driver_available(d)
local location = {lat = tonumber(ARGV[4]), lon = tonumber(ARGV[5]), updated_at = iso(now_ms())}
if ARGV[6] ~= '' then location.heading = tonumber(ARGV[6]) end
if ARGV[7] ~= '' then location.speed_mps = tonumber(ARGV[7]) end
jset(KEYS[1], d, 'location', location)
jset(KEYS[1], d, 'cell', ARGV[8])
local available = sync_supply(dk, d)
local became = '0'
if available and not was then became = '1' end
return {'ok', '', '', became}
