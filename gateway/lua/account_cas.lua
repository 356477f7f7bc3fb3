-- Compare-and-set an account record (a JSON string) by its subject id.
-- KEYS[1] the account; ARGV[1] the expected subject_id; ARGV[2] the new
-- value, or '' to delete. A new value is stored without expiry (a pending
-- account carries a TTL until it is activated).
-- Returns 1 when the record was ours and changed, 0 otherwise.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local ok, record = pcall(cjson.decode, raw)
if not ok or record.subject_id ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
