-- Compare-and-set an account record (a JSON string) by its subject id.
-- K.account the account; A.subject_id the expected subject_id; A.value the new
-- value, or '' to delete. A new value is stored without expiry (a pending
-- account carries a TTL until it is activated).
-- Returns 1 when the record was ours and changed, 0 otherwise.
local raw = redis.call('GET', K.account)
if not raw then
  return 0
end
local ok, record = pcall(cjson.decode, raw)
if not ok or record.subject_id ~= A.subject_id then
  return 0
end
if A.value == '' then
  redis.call('DEL', K.account)
else
  redis.call('SET', K.account, A.value)
end
return 1
