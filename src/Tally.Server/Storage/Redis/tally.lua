#!lua name=tally_v1
--[[
Tally's Redis engine: the batch rules, run atomically in Redis as one function call per commit.

This is the second implementation of Counters/CounterRules.cs and Counters/BatchApplier.cs, and it must
agree with them in every decision: the order of the checks, which error wins, what state a failure
carries, quotas, replays. Every place that mirrors a C# rule says which one ("agrees with …"). The store
contract tests and the random model test run against Redis to keep the two from drifting.

Lua numbers are doubles, exact only below 2^53. Counter values and versions are 64-bit, so they travel
and are stored as canonical decimal strings; they are compared as strings (compare) and added exactly
(add): natively while both operands have at most 15 digits, otherwise by Redis's own INCRBY on a scratch
key that is never replicated. Times (milliseconds since 1970) and counts stay far below 2^53.

The library is versioned in its name: a Tally that changes the protocol or the data layout ships
tally_v2 beside it, so instances of both versions can run during a rolling upgrade.

Keys (all under tally:)
  tally:c:<name>       hash  v i lo hi ver ca ua by   (lo, hi, by absent: unbounded / no creator)
  tally:names          zset  every live name, score 0: listing in ordinal order by ZRANGEBYLEX
  tally:top:<prefix>   zset  names by value (the score, a double), for the prefix "" and every prefix of a name
                             that ends at a ':' ("shop:", "shop:eu:"): the top-N order without a scan
  tally:count          string  live counters in the store
  tally:owned          hash  API key id -> live counters it created
  tally:r:<n>:<caller><key>  string  an idempotency record, with the retention as TTL (n = #caller)
  tally:rk:<caller>    zset  the caller's record keys by creation time (quota accounting, oldest)
  tally:rs:<caller>    hash  record key -> bytes
  tally:rb             hash  caller -> bytes of its records
  tally:as:<name>      hash  alert id -> revision: the alerts firing on the counter (absent: ok)
  tally:alerts:outbox  stream  alert events (alert, type, payload, at, attempts[, id]), read by the consumer group
                       'senders' (RedisAlertStore); an entry's id names its event ('evt_' .. entry id) unless it has 'id'
  tally:alerts:retry   zset  event id -> when it is due again; tally:alerts:r:<event> hash: its fields meanwhile
  tally:alerts:d:<id>  list  the alert's delivery attempts (JSON), newest first
  tally:h:<p>:<chunk>:<name>  hash  history of one counter (see "History" below): bucket start -> "inc,dec,sets,value"
  tally:hk:<name>      zset  the counter's history chunks "<p>:<chunk>", scored by when they expire
  tally:hl             list  the history log: an entry per commit not yet folded into the chunks (see "History")
  tally:hf:lease, tally:hf:k, tally:hf:done  the fold under way: its holder, the entries it folds, the counters applied
  tally:hl:<part>      list  revision 3's history log, in 32 parts by name: what it left unfolded
]]

local MAX_LONG = '9223372036854775807'
-- The library's revision within tally_v1 (same protocol, compatible additions): an instance replaces a loaded library
-- only with a newer revision, so during a rolling upgrade an old instance never takes back a newer one's code.
-- Raise it with every change to this file.
local REVISION = 4
local DONE_KEPT_MS = 600000
local SCRATCH = 'tally:scratch'
local FIELDS = { 'v', 'i', 'lo', 'hi', 'ver', 'ca', 'ua', 'by' }
-- Expired records whose bytes one commit gives back per caller; the rest go at the next commit or upkeep.
local PRUNE_PER_CALLER = 256

-- Signed canonical decimal strings (no leading zeros, no "-0"): -1, 0 or 1.
local function compare(a, b)
  local na, nb = a:byte(1) == 45, b:byte(1) == 45
  if na ~= nb then
    return na and -1 or 1
  end
  local r
  if a == b then
    return 0
  elseif #a ~= #b then
    r = #a < #b and -1 or 1
  else
    r = a < b and -1 or 1 -- same length, digits only after the sign: byte order is numeric order
  end
  return na and -r or r
end

-- a + b (b may be negative) exactly, or nil when the sum leaves 64 bits.
local function add(a, b)
  if #a <= 15 and #b <= 15 then
    return string.format('%.0f', tonumber(a) + tonumber(b)) -- both below 10^15: the sum is exact in a double
  end
  redis.set_repl(redis.REPL_NONE)
  redis.call('SET', SCRATCH, a)
  local sum = redis.pcall('INCRBY', SCRATCH, b)
  local result = nil
  if type(sum) ~= 'table' or not sum.err then
    result = redis.call('GET', SCRATCH)
  end
  redis.call('DEL', SCRATCH)
  redis.set_repl(redis.REPL_ALL)
  return result
end

local function negate(amount)
  return '-' .. amount -- amount is 1..2^63-1, so its negation fits
end

-- Agrees with Counter.Allows.
local function allows(state, value)
  return (not state.lo or compare(value, state.lo) >= 0) and (not state.hi or compare(value, state.hi) <= 0)
end

-- Agrees with CounterName.IsValid: ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$
local function valid_name(name)
  return #name >= 1 and #name <= 128 and name:find('^[A-Za-z0-9][A-Za-z0-9._:%-]*$') ~= nil
end

-- The top-N indexes a name belongs to: "" and its first two prefixes that end at a ':' ("shop:", "shop:eu:"), no more,
-- so a name of many segments cannot make a counter cost many sorted-set entries. Agrees with RedisCounterStore.IsIndexed.
local INDEXED_DEPTH = 2
local function indexes_of(name)
  local keys = { 'tally:top:' }
  local from = 1
  while #keys <= INDEXED_DEPTH do
    local colon = name:find(':', from, true)
    if not colon then return keys end
    keys[#keys + 1] = 'tally:top:' .. name:sub(1, colon)
    from = colon + 1
  end
  return keys
end

local function copy(state)
  local c = {}
  for k, v in pairs(state) do
    c[k] = v
  end
  return c
end

-- Results. A result is a table { status, state, code, x1..x4 } encoded by encode_result; the C# reader
-- (RedisOutcomeReader) turns it into a CommandResult and words the failure (the x are what the words need).
local function fail(code, current, x1, x2, x3, x4)
  return { 'f', current, code, x1 or '', x2 or '', x3 or '', x4 or '' }
end

-------------------------------------------------------------------------------------------------
-- The rules: agrees with CounterRules.Apply, check for check.
-------------------------------------------------------------------------------------------------

local function check_precondition(pre, current)
  if not pre then
    return nil
  elseif pre == '!' then
    if current then return fail('counter_exists', current) end
  elseif pre == '*' then
    if not current then return fail('version_mismatch', nil, 'any') end
  else
    if not current then return fail('version_mismatch', nil, 'missing') end
    for _, version in ipairs(pre) do
      if version == current.ver then return nil end
    end
    return fail('version_mismatch', current, 'mismatch')
  end
  return nil
end

local function version_exhausted(current)
  if current and current.ver == MAX_LONG then
    return fail('version_exhausted', nil)
  end
  return nil
end

local function rule_add(name, current, amount, down, now)
  if amount:byte(1) == 45 or amount == '0' then
    return fail('invalid_amount', nil)
  end
  local before = current or { v = '0', i = '0', ver = '0', ca = now, ua = now }
  local next = add(before.v, down and negate(amount) or amount)
  if not next or not allows(before, next) then
    return fail('out_of_range', before)
  end
  local exhausted = version_exhausted(current)
  if exhausted then return exhausted end
  local after = copy(before)
  after.v, after.ver, after.ua = next, add(before.ver, '1'), now
  return { 'o', after }
end

local function rule_put(current, fields, now)
  -- fields: { value, initial, min, max }, each false (absent), '' (null: unbounded) or a decimal string
  local initial = fields[2] or (current and current.i) or '0'
  local lo, hi = current and current.lo or false, current and current.hi or false
  if fields[3] then lo = fields[3] ~= '' and fields[3] or false end
  if fields[4] then hi = fields[4] ~= '' and fields[4] or false end
  local value = fields[1] or (current and current.v) or initial
  if lo and hi and compare(lo, hi) > 0 then
    return fail('invalid_bounds', nil, lo, hi)
  end
  local exhausted = version_exhausted(current)
  if exhausted then return exhausted end
  local proposed = {
    v = value, i = initial, lo = lo, hi = hi,
    ver = add(current and current.ver or '0', '1'),
    ca = current and current.ca or now, ua = now, by = current and current.by or false,
  }
  if not allows(proposed, value) then
    return fail('invalid_value', nil, 'value', value, lo, hi)
  end
  if not allows(proposed, initial) then
    return fail('invalid_value', nil, 'initial', initial, lo, hi)
  end
  return { current and 'o' or 'n', proposed }
end

local function rule_import(current, s)
  -- s: { value, initial, min, max, version, createdAt, updatedAt }, min/max '' when unbounded
  local state = { v = s[1], i = s[2], lo = s[3] ~= '' and s[3] or false, hi = s[4] ~= '' and s[4] or false,
                  ver = s[5], ca = s[6], ua = s[7] }
  if state.lo and state.hi and compare(state.lo, state.hi) > 0 then
    return fail('invalid_bounds', nil, state.lo, state.hi)
  end
  if not allows(state, state.v) or not allows(state, state.i) then
    return fail('invalid_value', nil, 'import', state.v, state.i)
  end
  if compare(state.ver, '1') < 0 then
    return fail('invalid_value', nil, 'version')
  end
  return { current and 'o' or 'n', state }
end

local function apply_rules(op, current, now)
  local kind, name, arg = op[1], op[2], op[3]
  if not valid_name(name) then
    return fail('invalid_name', nil)
  end
  local failed = check_precondition(op[4], current)
  if failed then return failed end
  if kind == 'i' or kind == 'd' then
    return rule_add(name, current, arg, kind == 'd', now)
  elseif kind == 'p' then
    return rule_put(current, arg, now)
  elseif kind == 'g' then
    if not current then return fail('counter_not_found', nil) end
    return { 'r', current }
  elseif kind == 'r' then
    if not current then return fail('counter_not_found', nil) end
    local exhausted = version_exhausted(current)
    if exhausted then return exhausted end
    local after = copy(current)
    after.v, after.ver, after.ua = current.i, add(current.ver, '1'), now
    return { 'o', after }
  elseif kind == 'x' then
    if not current then return fail('counter_not_found', nil) end
    return { 'd', current }
  elseif kind == 'm' then
    return rule_import(current, arg)
  end
  error('tally: unknown operation ' .. tostring(kind))
end

-------------------------------------------------------------------------------------------------
-- Threshold alerts: agrees with Alerts/AlertEvaluator.cs (the state machine) and AlertPayload.cs, rule for rule.
-- The commit document carries the alerts that watch any of its names (RedisCommitWriter), each as
-- { id, revision, 'above'|'below', threshold, resolve level, '1' when its webhook is enabled, counter or false, prefix or false },
-- exact ones first, then prefixes, each in id order (the order of AlertSet.Matching).
-------------------------------------------------------------------------------------------------

local OUTBOX = 'tally:alerts:outbox'

local function alert_watches(alert, name)
  if alert[7] then
    return alert[7] == name
  end
  return name:sub(1, #alert[8]) == alert[8]
end

-- Agrees with AlertDefinition.Fires: strictly past the threshold.
local function alert_fires(alert, value)
  if alert[3] == 'above' then
    return compare(value, alert[4]) > 0
  end
  return compare(value, alert[4]) < 0
end

-- Agrees with AlertDefinition.Resolves: back at or before the resolve level.
local function alert_resolves(alert, value)
  if alert[3] == 'above' then
    return compare(value, alert[5]) <= 0
  end
  return compare(value, alert[5]) >= 0
end

-- Agrees with AlertPayload.Render byte for byte (alert ids and counter names need no JSON escaping).
local function alert_payload(alert, firing, name, after, iso)
  local value, version = 'null', 'null'
  if after then
    value, version = after.v, after.ver
  end
  return '{"type":"alert.' .. (firing and 'firing' or 'resolved') .. '","timestamp":"' .. iso .. '","data":{"alert":"' .. alert[1]
    .. '","counter":"' .. name .. '","state":"' .. (firing and 'firing' or 'ok') .. '","value":' .. value .. ',"version":' .. version
    .. ',"direction":"' .. alert[3] .. '","threshold":' .. alert[4] .. ',"resolve":' .. alert[5]
    .. ',"deleted":' .. (after and 'false' or 'true') .. '}}'
end

-- Agrees with AlertEvaluator.Evaluate: for each change in order and each alert watching its counter, a state recorded
-- under another revision is ok; ok -> firing past the threshold, firing -> ok back at the resolve level, a deleted
-- firing counter resolves; an event (XADD to the outbox) per transition while the webhook is enabled.
-- Returns the numbers of firing and resolved events, and each event as 'E<counter>\n<payload>' for the live streams.
local function evaluate_alerts(alerts, change_log, now, iso)
  local states, changed, changed_names = {}, {}, {}
  local firing_events, resolved_events, published = 0, 0, {}
  for _, change in ipairs(change_log) do
    local name, after = change[1], change[2]
    for _, alert in ipairs(alerts) do
      if alert_watches(alert, name) then
        local st = states[name]
        if not st then
          st = {}
          local flat = redis.call('HGETALL', 'tally:as:' .. name)
          for i = 1, #flat, 2 do
            st[flat[i]] = flat[i + 1]
          end
          states[name] = st
          changed[name] = {}
          changed_names[#changed_names + 1] = name
        end
        local id = alert[1]
        local recorded = st[id]
        local firing = recorded == alert[2]
        local transition = nil
        if not after then
          if firing then transition = 'resolved' end
        elseif not firing and alert_fires(alert, after.v) then
          transition = 'firing'
        elseif firing and alert_resolves(alert, after.v) then
          transition = 'resolved'
        end
        if transition then
          st[id] = transition == 'firing' and alert[2] or false
          changed[name][id] = true
          if alert[6] == '1' then
            local payload = alert_payload(alert, transition == 'firing', name, after, iso)
            redis.call('XADD', OUTBOX, '*', 'alert', id, 'type', 'alert.' .. transition,
              'payload', payload, 'at', now, 'attempts', '0')
            published[#published + 1] = 'E' .. name .. '\n' .. payload
            if transition == 'firing' then
              firing_events = firing_events + 1
            else
              resolved_events = resolved_events + 1
            end
          end
        elseif recorded and not firing then
          st[id] = false -- recorded under an older revision of the alert: dropped
          changed[name][id] = true
        end
      end
    end
  end
  for _, name in ipairs(changed_names) do
    for id in pairs(changed[name]) do
      if states[name][id] then
        redis.call('HSET', 'tally:as:' .. name, id, states[name][id])
      else
        redis.call('HDEL', 'tally:as:' .. name, id)
      end
    end
  end
  return firing_events, resolved_events, published
end

-------------------------------------------------------------------------------------------------
-- History: agrees with HistoryWrites.Record (History/HistoryWrites.cs). Per counter and commit: the amounts
-- added and subtracted (exact, saturating at 2^63-1), the number of sets (put, reset, import), the value after
-- the last change; a deletion drops the counter's history, and what follows it in the commit starts afresh.
-- Bucket starts are not computed here: the commit document carries them, computed by HistoryIntervals in C#,
-- with each bucket's chunk and expiry (RedisHistory.cs), so the two engines cannot bucket differently.
--
-- Log and fold. A commit writes no bucket: it appends one entry (RPUSH) to the history log tally:hl, whatever it
-- changed, and a fold adds the log to the buckets later, each counter's records of many commits at once. An entry:
--   "<p>,<bucket start>,<chunk start>,<chunk expiry>;..." (one per period) "|" then ";<record>" per change of the
--   commit in order and a closing ";", a record being "!<name>" (the counter was deleted: its history goes) or
--   "<name>,<increments>,<decrements>,<sets>,<value>" (one change).
-- The fold is driven by RedisCounterStore, which reads and adds up the log itself, off Redis's one thread, and hands
-- the sums here a share of the counters at a time. One fold at a time, under a lease: tally_v1_history_fold_begin
-- takes the lease; the first tally_v1_history_fold_apply fixes the entries folded, the first k of the log (tally:hf:k);
-- each apply adds the sums of some counters to their chunks and marks them applied (the set tally:hf:done), so that a read takes those
-- counters' log after the first k; tally_v1_history_fold_end trims the k entries and forgets the fold. Every call checks
-- the lease and k, so a folder that lost its lease (paused past it) changes nothing; an instance that finds k without a
-- lease (its folder died) finishes that fold, skipping the counters already applied. A read
-- (RedisHistory.ReadAsync) takes the buckets, the log and the fold's k and applied mark in one MULTI/EXEC and adds the
-- counter's records up as the fold would. Names are [A-Za-z0-9._:-], so ',', ';', '|' and '!' never occur in one.
-- The entry's grammar and tally_v1_history_fold_apply's arguments are protocol shared with RedisHistoryFold.cs: the
-- newest library serves every instance, so changing either needs a tally_v2 library, not a new revision.
--
-- Revision 3 split the log by name into LOG_PARTS lists tally:hl:<part>, one entry per part a commit changed counters
-- of, and folded a part in one call (tally_v1_history_fold): over 10,000 names, 19 appends per commit and the
-- parsing on Redis's one thread gave Redis about 60% more work per commit with history than without. Those lists are
-- read and folded still, for what a revision-3 Tally left behind.
--
-- Buckets: those of one period (m, h, d) fall into fixed chunks (an hour of minutes, a day of hours, 30 days of
-- days); a chunk is a hash tally:h:<p>:<chunk>:<name>, field = bucket start, value = "inc,dec,sets,value", that
-- expires (relative TTL, Redis's clock: its expiry by Tally's clock minus the fold's time, set when the chunk is
-- made) once its last bucket is past the retention: no pruning pass. A bucket whose chunk is past its expiry when
-- folded is dropped. The zset tally:hk:<name> lists the counter's live chunks, so that deleting the counter deletes
-- exactly those.
-------------------------------------------------------------------------------------------------

local LOG_PARTS = 32

-- The part of revision 3's history log a counter's entries went to.
local function log_part(name)
  local h = 0
  for i = 1, #name do
    h = (h * 31 + name:byte(i)) % 65536
  end
  return 'tally:hl:' .. (h % LOG_PARTS)
end

local function saturating_add(a, b)
  return add(a, b) or MAX_LONG -- both are non-negative sums: the only overflow is past 2^63-1
end

-- Sums of history (non-negative) are added many at a time: each is kept as a Lua number while that is exact (below
-- 2^53), else as a decimal string (saturating_add), and written out once (sum_text); a decimal conversion costs more
-- than the addition.
local EXACT_BELOW = 9007199254740992
local function sum_text(a)
  if a == 0 then return '0' end -- the usual decrements and sets
  if type(a) == 'number' then return string.format('%.0f', a) end
  return a
end

local function sum_add(a, b) -- each a number or a decimal string
  if type(a) == 'string' and #a <= 15 then a = tonumber(a) end
  if type(b) == 'string' and #b <= 15 then b = tonumber(b) end
  if type(a) == 'number' and type(b) == 'number' then
    local sum = a + b
    if sum < EXACT_BELOW then return sum end -- both exact and the sum below 2^53: exact
  end
  return saturating_add(sum_text(a), sum_text(b))
end

local function clear_history(name)
  local index = 'tally:hk:' .. name
  for _, chunk in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    redis.call('DEL', 'tally:h:' .. chunk .. ':' .. name)
  end
  redis.call('DEL', index)
end

-- A bucket's stored text "inc,dec,sets,value": one format call when the sums are numbers (as they are below 2^53).
local function bucket_text(inc, dec, sets, value)
  if type(inc) == 'number' and type(dec) == 'number' and type(sets) == 'number' then
    return string.format('%.0f,%.0f,%.0f,%s', inc, dec, sets, value)
  end
  return sum_text(inc) .. ',' .. sum_text(dec) .. ',' .. sum_text(sets) .. ',' .. value
end

-- A folded bucket { start, inc, dec, sets, value } added to the stored text old (false: none yet).
local function merged_bucket(b, old)
  if not old then
    return bucket_text(b[2], b[3], b[4], b[5])
  end
  local oi, od, os = old:match('^([^,]*),([^,]*),([^,]*),')
  return bucket_text(sum_add(oi, b[2]), sum_add(od, b[3]), sum_add(os, b[4]), b[5])
end

-- Adds one counter's folded buckets, grouped by chunk: { key, p, chunk, expiry, ttl, { start, inc, dec, sets, value }... },
-- each chunk read and written with one command each (HGET/HSET for the usual single bucket); a chunk made now gets
-- its TTL and goes into the counter's index.
local function add_to_chunks(name, chunks, now)
  local index_args, index_ttl = {}, 0
  for _, c in ipairs(chunks) do
    local key, buckets = c[1], c[6]
    local fresh
    if #buckets == 1 then
      local b = buckets[1]
      local old = redis.call('HGET', key, b[1])
      fresh = not old
      redis.call('HSET', key, b[1], merged_bucket(b, old))
    else
      local fields = {}
      for i, b in ipairs(buckets) do
        fields[i] = b[1]
      end
      local old = redis.call('HMGET', key, unpack(fields))
      local set = {}
      fresh = false
      for i, b in ipairs(buckets) do
        fresh = fresh or not old[i]
        set[#set + 1] = b[1]
        set[#set + 1] = merged_bucket(b, old[i])
      end
      redis.call('HSET', key, unpack(set))
    end
    -- Every chunk gets its TTL when it is made: one without a TTL is new.
    if fresh and redis.call('PEXPIRE', key, string.format('%.0f', c[5]), 'NX') == 1 then
      index_args[#index_args + 1] = c[4]
      index_args[#index_args + 1] = c[2] .. ':' .. c[3]
      if c[5] > index_ttl then index_ttl = c[5] end
    end
  end
  if #index_args > 0 then
    local index = 'tally:hk:' .. name
    redis.call('ZADD', index, unpack(index_args))
    index_ttl = string.format('%.0f', index_ttl)
    -- The index lives as long as its longest-lived chunk. One without a TTL is new: nothing in it has expired.
    if redis.call('PEXPIRE', index, index_ttl, 'NX') == 0 then
      redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now)
      redis.call('PEXPIRE', index, index_ttl, 'GT')
    end
  end
end

local HISTORY_LOG, FOLD_LEASE, FOLD_K, FOLD_DONE = 'tally:hl', 'tally:hf:lease', 'tally:hf:k', 'tally:hf:done'

-- notes: the commit's changes in order, { name, kind, amount, value } (kind as in apply_rules, 'x' deleted).
-- Appends the commit's entry to the log (none when it changed no history): a record per change, except that a
-- counter's changes with no deletion between them are added up into one record (a hot counter's commit of many
-- increments logs one), which the fold and reads treat alike.
local function write_history(history, notes)
  local records, seen, repeated = {}, {}, false
  for _, n in ipairs(notes) do
    if n[2] == 'x' or history.record then
      records[#records + 1] = n
      if seen[n[1]] then repeated = true end
      seen[n[1]] = true
    end
  end
  if #records == 0 then
    return
  end
  local header = {}
  for _, period in ipairs(history.periods) do
    header[#header + 1] = period[1] .. ',' .. period[2] .. ',' .. period[3] .. ',' .. period[5]
  end
  local entry = { table.concat(header, ';') .. '|' }
  if not repeated then -- the usual commit over many names: a record per change, written as it is
    for _, n in ipairs(records) do
      local name, kind = n[1], n[2]
      if kind == 'x' then
        entry[#entry + 1] = ';!' .. name
      elseif kind == 'i' then
        entry[#entry + 1] = ';' .. name .. ',' .. n[3] .. ',0,0,' .. n[4]
      elseif kind == 'd' then
        entry[#entry + 1] = ';' .. name .. ',0,' .. n[3] .. ',0,' .. n[4]
      else
        entry[#entry + 1] = ';' .. name .. ',0,0,1,' .. n[4] -- a set: put, reset, import
      end
    end
  else
    local open = {} -- name -> its record still being added to { name, inc, dec, sets, value }
    for _, n in ipairs(records) do
      local name, kind = n[1], n[2]
      if kind == 'x' then
        entry[#entry + 1] = ';!' .. name
        open[name] = nil
      else
        local t = open[name]
        if not t then
          t = { name, 0, 0, 0 }
          open[name], entry[#entry + 1] = t, t
        end
        if kind == 'i' then
          t[2] = t[2] == 0 and n[3] or sum_add(t[2], n[3])
        elseif kind == 'd' then
          t[3] = t[3] == 0 and n[3] or sum_add(t[3], n[3])
        else
          t[4] = t[4] + 1 -- at most one per operation of the commit: far below 2^53
        end
        t[5] = n[4]
      end
    end
    for i, t in ipairs(entry) do
      if type(t) == 'table' then
        entry[i] = ';' .. t[1] .. ',' .. sum_text(t[2]) .. ',' .. sum_text(t[3]) .. ',' .. sum_text(t[4]) .. ',' .. t[5]
      end
    end
  end
  entry[#entry + 1] = ';'
  redis.call('RPUSH', HISTORY_LOG, table.concat(entry))
end

-- The periods of an entry's header: { p, bucket start, chunk start, chunk expiry } each.
local function entry_periods(header)
  local periods = {}
  for p, start, chunk, expiry in header:gmatch('([^,;]+),([^,;]+),([^,;]+),([^,;]+)') do
    periods[#periods + 1] = { p, start, chunk, expiry }
  end
  return periods
end

-- Folds entries from the head of one part of revision 3's log (what it left behind): whole entries, until they hold at least ARGV[2] records (at
-- least one entry). ARGV: now (Tally's ms), records, part (0 to LOG_PARTS - 1). Returns { entries folded, records
-- folded, entries left in the part }.
local FOLD_READ = 64
local function history_fold(keys, args)
  local now, budget, log = args[1], tonumber(args[2]), 'tally:hl:' .. args[3]
  local now_ms = tonumber(now)
  -- Per counter its commits' totals added up per header (the commits of one minute share it), then per bucket.
  local counters, names, headers = {}, {}, {} -- name -> { clears, groups = { header -> group }, order = { group... } }
  local taken, records = 0, 0
  while records < budget do
    local entries = redis.call('LRANGE', log, taken, taken + FOLD_READ - 1)
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      local bar = entry:find('|', 1, true)
      local header = entry:sub(1, bar - 1)
      if not headers[header] then headers[header] = entry_periods(header) end
      for record in entry:sub(bar + 1):gmatch('[^;]+') do
        records = records + 1
        local clears = record:byte(1) == 33 -- '!'
        local name, inc, dec, sets, value
        if clears then
          name = record:sub(2)
        else
          name, inc, dec, sets, value = record:match('^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)$')
        end
        local c = counters[name]
        if not c then
          c = { clears = false, groups = {}, order = {} }
          counters[name], names[#names + 1] = c, name
        end
        if clears then
          c.clears, c.groups, c.order = true, {}, {}
        else
          local g = c.groups[header]
          -- g[6]: the place of its latest record in the log, so a bucket takes the value written last even when the
          -- minutes of entries are not in order (instances' clocks differ a little).
          if g then
            g[2], g[3], g[4], g[5], g[6] = sum_add(g[2], inc), sum_add(g[3], dec), sum_add(g[4], sets), value, records
          else
            g = { header, inc, dec, sets, value, records }
            c.groups[header], c.order[#c.order + 1] = g, g
          end
        end
      end
      taken = taken + 1
      if records >= budget then break end
    end
  end
  for _, name in ipairs(names) do
    local c = counters[name]
    if c.clears then
      clear_history(name)
    end
    local chunks, order = {}, {} -- chunk key -> { key, p, chunk, expiry, ttl, { bucket... }, { start -> bucket } }
    for _, g in ipairs(c.order) do
      for _, period in ipairs(headers[g[1]]) do
        local ttl = tonumber(period[4]) - now_ms
        if ttl > 0 then -- else past its retention: dropped
          local key = 'tally:h:' .. period[1] .. ':' .. period[3] .. ':' .. name
          local chunk = chunks[key]
          if not chunk then
            chunk = { key, period[1], period[3], period[4], ttl, {}, {} }
            chunks[key], order[#order + 1] = chunk, chunk
          end
          local b = chunk[7][period[2]]
          if b then
            b[2], b[3], b[4] = sum_add(b[2], g[2]), sum_add(b[3], g[3]), sum_add(b[4], g[4])
            if g[6] > b[6] then b[5], b[6] = g[5], g[6] end
          else
            b = { period[2], g[2], g[3], g[4], g[5], g[6] }
            chunk[7][period[2]], chunk[6][#chunk[6] + 1] = b, b
          end
        end
      end
    end
    if #order > 0 then
      add_to_chunks(name, order, now)
    end
  end
  if taken > 0 then
    redis.call('LTRIM', log, taken, -1)
  end
  return { taken, records, redis.call('LLEN', log) }
end

-- Read by revision-3 Tallies during an upgrade (this revision reads the log itself, RedisHistory.ReadAsync).
-- One counter's pieces of the unfolded log, oldest first: per record that names it, "<header>|" then "!" when it was
-- deleted, else "<increments>,<decrements>,<sets>,<value>" (revision 3's entries: one piece per entry, "!" and/or its
-- totals). ARGV: name.
local function history_log(keys, args)
  local name = args[1]
  local out = {}
  local log = log_part(name)
  local changed, deleted = ';' .. name .. ',', ';!' .. name .. ';'
  local length = redis.call('LLEN', log)
  for from = 0, length - 1, 256 do
    for _, entry in ipairs(redis.call('LRANGE', log, from, from + 255)) do
      local bar = entry:find('|', 1, true)
      local d = entry:find(deleted, bar, true)
      local c = entry:find(changed, bar, true)
      if d or c then
        local piece = entry:sub(1, bar) .. (d and '!' or '')
        if c then
          piece = piece .. entry:sub(c + #changed, entry:find(';', c + 1, true) - 1)
        end
        out[#out + 1] = piece
      end
    end
  end
  -- A counter the fold under way has applied has the first k entries in its chunks already.
  local first = 0
  local k = redis.call('GET', FOLD_K)
  if k and redis.call('SISMEMBER', FOLD_DONE, name) == 1 then
    first = tonumber(k)
  end
  length = redis.call('LLEN', HISTORY_LOG)
  for from = first, length - 1, 256 do
    for _, entry in ipairs(redis.call('LRANGE', HISTORY_LOG, from, from + 255)) do
      local bar = entry:find('|', 1, true)
      if entry:find(name, bar, true) then -- the usual entry does not name it: one search
        local head, at = entry:sub(1, bar), bar
        while true do
          local c = entry:find(changed, at, true)
          local d = entry:find(deleted, at, true)
          if d and (not c or d < c) then
            out[#out + 1] = head .. '!'
            at = d + #deleted - 1 -- the ';' that starts the next record
          elseif c then
            local stop = entry:find(';', c + #changed, true)
            out[#out + 1] = head .. entry:sub(c + #changed, stop - 1)
            at = stop
          else
            break
          end
        end
      end
    end
  end
  return out
end

-- Begins a fold, or goes on with one whose folder died. ARGV: lease id, lease ms. Returns { k, 1 } when going on with a
-- fold of the first k entries; { length of the log, 0 } for a new one, whose folder reads as many entries as it takes
-- and fixes k with its first apply (nothing is applied before, so reads need no k meanwhile); { 0, 0 } when the log is
-- empty; { -1, 0 } while another folder holds the lease.
local function history_fold_begin(keys, args)
  local id, lease_ms = args[1], args[2]
  local holder = redis.call('GET', FOLD_LEASE)
  if holder and holder ~= id then
    return { -1, 0 }
  end
  local k = redis.call('GET', FOLD_K)
  if k then
    redis.call('SET', FOLD_LEASE, id, 'PX', lease_ms)
    return { tonumber(k), 1 }
  end
  local length = redis.call('LLEN', HISTORY_LOG)
  if length > 0 then
    redis.call('SET', FOLD_LEASE, id, 'PX', lease_ms)
  end
  return { length, 0 }
end

-- Whether the caller still holds the fold of k entries; the first apply of a new fold fixes k (with fixes).
local function holds_fold(id, k, fixes)
  if redis.call('GET', FOLD_LEASE) ~= id then
    return false
  end
  local fixed = redis.call('GET', FOLD_K)
  if not fixed and fixes then
    redis.call('SET', FOLD_K, k)
    redis.call('DEL', FOLD_DONE)
    return true
  end
  return fixed == k
end

-- Adds the fold's sums of some counters to their chunks. ARGV: lease id, lease ms, k, now (Tally's ms), then per counter
-- its name and "<1 if its history goes first, else 0>" followed by ";<p>,<chunk>,<expiry>,<start>,<inc>,<dec>,<sets>,<value>"
-- per bucket, the buckets of one chunk together. A counter applied already (by a folder that died) is skipped.
-- Returns 1, or 0 when the caller no longer holds the fold.
local function history_fold_apply(keys, args)
  local id, lease_ms, k, now = args[1], args[2], args[3], args[4]
  if not holds_fold(id, k, true) then
    return 0
  end
  redis.call('PEXPIRE', FOLD_LEASE, lease_ms)
  local now_ms = tonumber(now)
  for i = 5, #args, 2 do
    local name, sums = args[i], args[i + 1]
    if redis.call('SADD', FOLD_DONE, name) == 1 then
      if sums:byte(1) == 49 then -- '1'
        clear_history(name)
      end
      local chunks, chunk = {}, nil
      for p, start_of_chunk, expiry, start, inc, dec, sets, value in
          sums:gmatch(';([^,;]+),([^,;]+),([^,;]+),([^,;]+),([^,;]+),([^,;]+),([^,;]+),([^,;]+)') do
        local ttl = tonumber(expiry) - now_ms
        if ttl > 0 then -- else past its retention: dropped
          if not chunk or chunk[2] ~= p or chunk[3] ~= start_of_chunk then
            chunk = { 'tally:h:' .. p .. ':' .. start_of_chunk .. ':' .. name, p, start_of_chunk, expiry, ttl, {} }
            chunks[#chunks + 1] = chunk
          end
          chunk[6][#chunk[6] + 1] = { start, inc, dec, sets, value }
        end
      end
      if #chunks > 0 then
        add_to_chunks(name, chunks, now)
      end
    end
  end
  return 1
end

-- Ends the fold: its k entries leave the log. ARGV: lease id, k. Returns the entries left in the log, or -1 when the
-- caller no longer holds the fold.
local function history_fold_end(keys, args)
  local id, k = args[1], args[2]
  if not holds_fold(id, k, true) then
    return -1
  end
  redis.call('LTRIM', HISTORY_LOG, tonumber(k), -1)
  redis.call('UNLINK', FOLD_DONE, FOLD_K, FOLD_LEASE) -- the set of a large fold is freed off Redis's thread
  return redis.call('LLEN', HISTORY_LOG)
end

-------------------------------------------------------------------------------------------------
-- One commit: agrees with BatchApplier (replays, quotas, atomic batches, records).
-------------------------------------------------------------------------------------------------

local function record_key(caller, key)
  return 'tally:r:' .. #caller .. ':' .. caller .. key
end

local function encode_state(state, record_time)
  if not state then
    return ',,,,,,'
  end
  local ca = state.ca == record_time and '' or state.ca
  local ua = state.ua == record_time and '' or state.ua
  return table.concat({ state.v, state.i, state.lo or '', state.hi or '', state.ver, ca, ua }, ',')
end

-- status,v,i,lo,hi,ver,ca,ua[,code,x1,x2,x3,x4]: times equal to the commit's own are left empty (the record keeps its time).
local function encode_result(result, record_time)
  local text = result[1] .. ',' .. encode_state(result[2], record_time)
  if result[1] == 'f' then
    text = text .. ',' .. table.concat(result, ',', 3, 7)
  end
  return (text:gsub(',+$', ''))
end

local function commit(keys, args)
  local doc = cjson.decode(args[1])
  local now = doc.now
  local now_ms = tonumber(now)
  local retention = tonumber(doc.retention)
  local not_before = now_ms - retention
  local max_counters = tonumber(doc.maxCounters)
  local record_limit = tonumber(doc.recordBytes)

  local committed = {}    -- name -> state loaded from Redis, or false
  local changes = {}      -- name -> state after this commit, or false (deleted)
  local changed_names = {}
  local owners = {}       -- key id -> change of its live counters
  local counter_delta = 0
  local total = nil
  local owned = {}
  local records = {}      -- record key -> { caller, key, fp, text, size }
  local record_order = {}
  local record_bytes = {} -- caller -> bytes of this commit's new records
  local usage = {}        -- caller -> { bytes, oldest }

  -- the atomic batch being applied: its overlay and counts, merged only if every operation succeeds
  local scratch, scratch_owners, scratch_counters = nil, nil, 0
  local notes = {}        -- the committed changes in order, for history (an aborted atomic batch takes its own back)

  local function note(name, kind, amount, value)
    notes[#notes + 1] = { name, kind, amount, value }
  end

  -- Alerts: the committed changes in order, { name, state after or false }, as CounterChanges.Of reads them in C#
  -- (an atomic batch's only once it has succeeded).
  local change_log, scratch_log = {}, nil
  local function log_change(name, state)
    local log = scratch_log or change_log
    log[#log + 1] = { name, state }
  end

  local function load(name)
    local state = committed[name]
    if state == nil then
      local f = redis.call('HMGET', 'tally:c:' .. name, unpack(FIELDS))
      if f[1] then
        state = { v = f[1], i = f[2], lo = f[3], hi = f[4], ver = f[5], ca = f[6], ua = f[7], by = f[8] }
      else
        state = false
      end
      committed[name] = state
    end
    return state
  end

  local function lookup(name)
    local state
    if scratch then state = scratch[name] end
    if state == nil then state = changes[name] end
    if state == nil then state = load(name) end
    return state or nil
  end

  local function store(name, state)
    if scratch then
      scratch[name] = state
    else
      if changes[name] == nil then changed_names[#changed_names + 1] = name end
      changes[name] = state
    end
  end

  local function count_owner(owner, change)
    if scratch then
      scratch_counters = scratch_counters + change
    else
      counter_delta = counter_delta + change
    end
    if owner then
      local t = scratch and scratch_owners or owners
      t[owner] = (t[owner] or 0) + change
    end
  end

  local function owned_by(key)
    if owned[key] == nil then
      owned[key] = tonumber(redis.call('HGET', 'tally:owned', key) or '0')
    end
    return owned[key]
  end

  -- Agrees with BatchApplier.RefuseCreation.
  local function refuse_creation(request)
    if total == nil then
      total = tonumber(redis.call('GET', 'tally:count') or '0')
    end
    if total + counter_delta + scratch_counters >= max_counters then
      return fail('counter_quota_exceeded', nil, 'store', doc.maxCounters)
    end
    local key, limit = request.owner, request.maxCounters
    if key and limit and owned_by(key) + (owners[key] or 0) + (scratch_owners and scratch_owners[key] or 0) >= tonumber(limit) then
      return fail('counter_quota_exceeded', nil, 'key', limit)
    end
    return nil
  end

  -- Agrees with BatchApplier.ApplyCommand.
  local function apply_operation(op, request)
    local name = op[2]
    local current = lookup(name)
    local result = apply_rules(op, current, now)
    local status = result[1]
    if status == 'f' or status == 'r' then
      return result
    end
    if status == 'd' then
      count_owner(current.by, -1)
      store(name, false)
      note(name, 'x')
      log_change(name, false)
      return result
    end
    if not current then
      local refused = refuse_creation(request)
      if refused then return refused end
      count_owner(request.owner, 1)
    end
    -- The creator stays with the counter through every change (import included); a new one is the requester's.
    if current then
      result[2].by = current.by or false
    else
      result[2].by = request.owner or false
    end
    store(name, result[2])
    note(name, op[1], op[3], result[2].v)
    log_change(name, result[2])
    return result
  end

  -- Agrees with BatchApplier.ApplyBatch; returns the results and the index of the operation that aborted it.
  local function apply_batch(request)
    local results = {}
    if not request.atomic then
      for i, op in ipairs(request.ops) do
        results[i] = apply_operation(op, request)
      end
      return results, nil
    end
    scratch, scratch_owners, scratch_counters = {}, {}, 0
    local noted = #notes
    scratch_log = {}
    for i, op in ipairs(request.ops) do
      results[i] = apply_operation(op, request)
      if results[i][1] == 'f' then
        scratch, scratch_owners, scratch_counters = nil, nil, 0
        for n = #notes, noted + 1, -1 do
          notes[n] = nil
        end
        scratch_log = nil
        return results, i
      end
    end
    local overlay, overlay_owners, overlay_counters = scratch, scratch_owners, scratch_counters
    scratch, scratch_owners, scratch_counters = nil, nil, 0
    for _, change in ipairs(scratch_log) do
      change_log[#change_log + 1] = change
    end
    scratch_log = nil
    for name, state in pairs(overlay) do
      store(name, state)
    end
    for owner, change in pairs(overlay_owners) do
      owners[owner] = (owners[owner] or 0) + change
    end
    counter_delta = counter_delta + overlay_counters
    return results, nil
  end

  -- The caller's bytes of live records and its oldest record's time, after giving back those that expired.
  local function usage_of(caller)
    local u = usage[caller]
    if u then return u end
    local zkey, skey = 'tally:rk:' .. caller, 'tally:rs:' .. caller
    local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. not_before, 'LIMIT', 0, PRUNE_PER_CALLER)
    local freed = 0
    for _, key in ipairs(expired) do
      freed = freed + tonumber(redis.call('HGET', skey, key) or '0')
      redis.call('HDEL', skey, key)
      redis.call('ZREM', zkey, key)
    end
    local bytes
    if freed > 0 then
      bytes = redis.call('HINCRBY', 'tally:rb', caller, -freed)
    else
      bytes = tonumber(redis.call('HGET', 'tally:rb', caller) or '0')
    end
    local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
    u = { bytes = bytes, oldest = first[2] and tonumber(first[2]) or nil }
    usage[caller] = u
    return u
  end

  -- Agrees with BatchApplier.IdempotencyQuotaExceeded.
  local function record_quota_exceeded(caller)
    local u = usage_of(caller)
    local used = u.bytes + (record_bytes[caller] or 0)
    if used < record_limit then
      return nil
    end
    local oldest = u.oldest or now_ms
    local seconds = math.floor((oldest + retention - now_ms + 999) / 1000)
    seconds = math.max(1, math.min(seconds, math.floor(retention / 1000) + 1))
    return 'E,idempotency_quota_exceeded,' .. used .. ',' .. doc.recordBytes .. ',' .. seconds
  end

  local function find_record(caller, key)
    local rkey = record_key(caller, key)
    local fresh = records[rkey]
    if fresh then
      return { fp = fresh.fp, time = now, text = fresh.text }
    end
    local stored = redis.call('GET', rkey)
    if not stored then return nil end
    -- fingerprint (64 hex) | created at | outcome
    local time_end = stored:find('|', 66, true)
    local time = stored:sub(66, time_end - 1)
    if tonumber(time) < not_before then return nil end -- expired by Tally's clock, even if Redis keeps it a little longer
    return { fp = stored:sub(1, 64), time = time, text = stored:sub(time_end + 1) }
  end

  -- Agrees with BatchApplier.RefusedByQuota: a request refused for a quota applied nothing and does not spend its key.
  local function refused_by_quota(results, aborted_at, batch)
    local result
    if batch then
      if not aborted_at then return false end
      result = results[aborted_at]
    else
      result = results[1]
    end
    return result[1] == 'f' and result[3] == 'counter_quota_exceeded'
  end

  local replies = {}
  for r, request in ipairs(doc.requests) do
    local reply = nil
    if request.key then
      local existing = find_record(request.caller, request.key)
      if existing then
        if existing.fp ~= request.fingerprint then
          reply = 'E,idempotency_key_reused'
        else
          reply = 'R' .. existing.time .. '|' .. existing.text
        end
      else
        reply = record_quota_exceeded(request.caller)
      end
    end
    if not reply then
      local results, aborted_at
      if request.batch then
        results, aborted_at = apply_batch(request)
      else
        results = { apply_operation(request.ops[1], request) }
      end
      local parts = { aborted_at and tostring(aborted_at - 1) or '' }
      for i, result in ipairs(results) do
        parts[i + 1] = encode_result(result, now)
      end
      local text = table.concat(parts, ';')
      reply = 'N' .. text
      if request.key and not refused_by_quota(results, aborted_at, request.batch) then
        -- Agrees with IdempotencyRecord.SizeOf: caller, key, fingerprint (32 bytes), outcome, 64 bytes of overhead.
        local size = #request.caller + #request.key + 32 + #text + 64
        local rkey = record_key(request.caller, request.key)
        if not records[rkey] then record_order[#record_order + 1] = rkey end
        records[rkey] = { caller = request.caller, key = request.key, fp = request.fingerprint, text = text, size = size }
        record_bytes[request.caller] = (record_bytes[request.caller] or 0) + size
      end
    end
    replies[r] = reply
  end

  local firing_events, resolved_events, published = 0, 0, {}
  if doc.alerts then
    firing_events, resolved_events, published = evaluate_alerts(doc.alerts, change_log, now, doc.iso)
  end

  -- Persist: only the fields that changed, so a hot counter costs one short HSET per commit.
  for _, name in ipairs(changed_names) do
    local after, before, key = changes[name], committed[name], 'tally:c:' .. name
    if not after then
      if before then
        redis.call('DEL', key)
        redis.call('ZREM', 'tally:names', name)
        for _, index in ipairs(indexes_of(name)) do
          redis.call('ZREM', index, name)
        end
        redis.call('DEL', 'tally:as:' .. name) -- a deleted counter keeps no alert state
      end
    else
      local set, unset = {}, {}
      for _, field in ipairs(FIELDS) do
        local value = after[field]
        if value then
          if not before or before[field] ~= value then
            set[#set + 1] = field
            set[#set + 1] = value
          end
        elseif before and before[field] then
          unset[#unset + 1] = field
        end
      end
      if #set > 0 then redis.call('HSET', key, unpack(set)) end
      if #unset > 0 then redis.call('HDEL', key, unpack(unset)) end
      if not before then redis.call('ZADD', 'tally:names', 0, name) end
      if not before or before.v ~= after.v then
        -- Redis turns the decimal string into the score itself (a double: close to ±2^63 several values share
        -- one score, and tally_v1_top leaves the exact order of those to the caller).
        for _, index in ipairs(indexes_of(name)) do
          redis.call('ZADD', index, after.v, name)
        end
      end
    end
  end
  if counter_delta ~= 0 then
    redis.call('INCRBY', 'tally:count', counter_delta)
  end
  for owner, change in pairs(owners) do
    if change ~= 0 then redis.call('HINCRBY', 'tally:owned', owner, change) end
  end
  for _, rkey in ipairs(record_order) do
    local record = records[rkey]
    local skey = 'tally:rs:' .. record.caller
    -- An expired record of the same key not yet pruned gives its bytes back as it is replaced.
    local old = tonumber(redis.call('HGET', skey, record.key) or '0')
    redis.call('SET', rkey, record.fp .. '|' .. now .. '|' .. record.text, 'PX', retention)
    redis.call('ZADD', 'tally:rk:' .. record.caller, now_ms, record.key)
    redis.call('HSET', skey, record.key, record.size)
    redis.call('HINCRBY', 'tally:rb', record.caller, record.size - old)
  end
  if doc.history then -- absent from a Tally older than history (a rolling upgrade): its commits record none
    write_history(doc.history, notes)
  end
  if doc.alerts then
    replies[#replies + 1] = 'A' .. firing_events .. ',' .. resolved_events
    for _, event in ipairs(published) do
      replies[#replies + 1] = event
    end
  end
  if doc.commit then
    -- Kept a while under the commit's id: when the answer is lost (a timeout, a cut connection), the caller reads
    -- it here once Redis answers again, rather than calling an applied commit failed (RedisCounterStore.RecoverAsync).
    redis.call('SET', 'tally:done:' .. doc.commit, cjson.encode(replies), 'PX', DONE_KEPT_MS)
  end
  return replies
end

-- Counters whose names lie in [from, to) (ZRANGEBYLEX bounds), at most limit, with their fields.
local function list(keys, args)
  local names = redis.call('ZRANGEBYLEX', 'tally:names', args[1], args[2], 'LIMIT', 0, tonumber(args[3]))
  local out = {}
  for _, name in ipairs(names) do
    local f = redis.call('HMGET', 'tally:c:' .. name, unpack(FIELDS))
    out[#out + 1] = name
    for i = 1, #FIELDS do
      out[#out + 1] = f[i] or ''
    end
  end
  return out
end

-- Candidates for the top `limit` of an index (see indexes_of), with their fields: every name scored above the
-- limit-th score, then those at that score in name order. A score is exact below 2^53 in magnitude, so there the
-- first (limit - above) names at the cut are the right ones; past it several values share a score, so up to
-- TIE_CAP of them are sent and the caller orders the candidates by their exact values.
local TIE_CAP = 1000
local function top(keys, args)
  local index, limit = 'tally:top:' .. args[1], tonumber(args[2])
  local names
  local cut = redis.call('ZREVRANGE', index, limit - 1, limit - 1, 'WITHSCORES')
  if #cut == 0 then
    names = redis.call('ZREVRANGE', index, 0, -1)
  else
    local score = cut[2]
    names = redis.call('ZREVRANGEBYSCORE', index, '+inf', '(' .. score)
    local exact = math.abs(tonumber(score)) < 9007199254740992
    local ties = redis.call('ZRANGEBYSCORE', index, score, score, 'LIMIT', 0, exact and (limit - #names) or TIE_CAP)
    for _, name in ipairs(ties) do
      names[#names + 1] = name
    end
  end
  local out = {}
  for _, name in ipairs(names) do
    local f = redis.call('HMGET', 'tally:c:' .. name, unpack(FIELDS))
    if f[1] then
      out[#out + 1] = name
      for i = 1, #FIELDS do
        out[#out + 1] = f[i] or ''
      end
    end
  end
  return out
end

-- Upkeep: gives back the bytes of expired records of up to `callers` callers from the HSCAN cursor; returns the next cursor.
local function prune(keys, args)
  local now_ms, retention = tonumber(args[2]), tonumber(args[3])
  local not_before = now_ms - retention
  local scan = redis.call('HSCAN', 'tally:rb', args[1], 'COUNT', tonumber(args[4]))
  local entries = scan[2]
  for i = 1, #entries, 2 do
    local caller = entries[i]
    local zkey, skey = 'tally:rk:' .. caller, 'tally:rs:' .. caller
    local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. not_before, 'LIMIT', 0, 1000)
    local freed = 0
    for _, key in ipairs(expired) do
      freed = freed + tonumber(redis.call('HGET', skey, key) or '0')
      redis.call('HDEL', skey, key)
      redis.call('ZREM', zkey, key)
    end
    if freed > 0 then
      redis.call('HINCRBY', 'tally:rb', caller, -freed)
    end
    if redis.call('ZCARD', zkey) == 0 then
      redis.call('HDEL', 'tally:rb', caller)
    end
  end
  return scan[1]
end

-------------------------------------------------------------------------------------------------
-- The alert outbox's life after the commit (Storage/Redis/RedisAlertStore.cs). Senders read the stream through the
-- consumer group 'senders': an entry read is pending for that sender (its lease) until it finishes it here, or until
-- another sender takes it over with XAUTOCLAIM once it has been idle longer than the lease (a crashed sender).
-------------------------------------------------------------------------------------------------

-- Moves retries that are due back into the stream, where a sender reads them. ARGV: now, at most. Returns how many.
local function alert_due(keys, args)
  local ids = redis.call('ZRANGEBYSCORE', 'tally:alerts:retry', '-inf', args[1], 'LIMIT', 0, tonumber(args[2]))
  for _, id in ipairs(ids) do
    local key = 'tally:alerts:r:' .. id
    local f = redis.call('HMGET', key, 'alert', 'type', 'payload', 'at', 'attempts')
    if f[1] then
      redis.call('XADD', OUTBOX, '*', 'id', id, 'alert', f[1], 'type', f[2], 'payload', f[3], 'at', f[4], 'attempts', f[5])
    end
    redis.call('DEL', key)
    redis.call('ZREM', 'tally:alerts:retry', id)
  end
  return #ids
end

-- A sender finishes an entry it read. ARGV: entry id, consumer, event id, attempts, due again at ('': done), the
-- attempt as JSON ('': none), alert id. The attempt is listed in any case (it happened); the entry is acknowledged,
-- and scheduled again, only while it is still this sender's. Returns 1 when it was, else 0.
local function alert_finish(keys, args)
  local entry, consumer, event, attempts, retry_at, attempt, alert = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
  if attempt ~= '' then
    redis.call('LPUSH', 'tally:alerts:d:' .. alert, attempt)
    redis.call('LTRIM', 'tally:alerts:d:' .. alert, 0, 9999)
  end
  local pending = redis.call('XPENDING', OUTBOX, 'senders', entry, entry, 1)
  if #pending == 0 or pending[1][2] ~= consumer then
    return 0
  end
  if retry_at ~= '' then
    local read = redis.call('XRANGE', OUTBOX, entry, entry)
    if #read > 0 then
      local f, flat = {}, read[1][2]
      for i = 1, #flat, 2 do
        f[flat[i]] = flat[i + 1]
      end
      redis.call('HSET', 'tally:alerts:r:' .. event, 'alert', f.alert, 'type', f.type, 'payload', f.payload, 'at', f.at, 'attempts', attempts)
      redis.call('ZADD', 'tally:alerts:retry', retry_at, event)
    end
  end
  redis.call('XACK', OUTBOX, 'senders', entry)
  redis.call('XDEL', OUTBOX, entry)
  return 1
end

redis.register_function{ function_name = 'tally_v1_revision', callback = function() return REVISION end, flags = { 'no-writes' } }
redis.register_function('tally_v1_commit', commit)
redis.register_function('tally_v1_alert_due', alert_due)
redis.register_function('tally_v1_alert_finish', alert_finish)
redis.register_function{ function_name = 'tally_v1_list', callback = list, flags = { 'no-writes' } }
redis.register_function{ function_name = 'tally_v1_top', callback = top, flags = { 'no-writes' } }
redis.register_function('tally_v1_prune', prune)
redis.register_function('tally_v1_history_fold', history_fold)
redis.register_function('tally_v1_history_fold_begin', history_fold_begin)
redis.register_function('tally_v1_history_fold_apply', history_fold_apply)
redis.register_function('tally_v1_history_fold_end', history_fold_end)
redis.register_function{ function_name = 'tally_v1_history_log', callback = history_log, flags = { 'no-writes' } }
