-- wrk script shared by every HTTP scenario of bench/run.sh.
--
-- The behaviour is chosen with environment variables (they reach setup(),
-- init() and done() alike, unlike wrk's "--" arguments, which only init() sees):
--   WRK_MODE    get     request the URL as given (default)
--               post    POST the URL's path with an empty body
--               random  POST /counters/<WRK_PREFIX><n>/increment, n random in [0, WRK_NAMES)
--               batch   POST /batch with WRK_BATCH increments of b:0 .. b:<WRK_BATCH-1>
--               load    create WRK_TOTAL counters <WRK_PREFIX>0 .. once each, WRK_BATCH per
--                       request (1 = single increments, >1 = POST /batch), then stop
--   WRK_THREADS must equal wrk's -t in load mode (threads split the names by it);
--   WRK_DONE_DIR (load mode): each thread creates a file there when it is done.
--
-- done() prints one line "WRK_JSON {...}" that bench/collect.py reads.
-- Latencies are in microseconds, as wrk measures them.

local mode     = os.getenv("WRK_MODE") or "get"
local prefix   = os.getenv("WRK_PREFIX") or "c:"
local names    = tonumber(os.getenv("WRK_NAMES") or "10000")
local batch    = tonumber(os.getenv("WRK_BATCH") or "1000")
local total    = tonumber(os.getenv("WRK_TOTAL") or "0")
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")

-- WRK_KEY: the API key every request sends (Tally runs with authentication on).
local key = os.getenv("WRK_KEY")
if key and key ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. key
end

local function headers(extra)
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

local json_headers = { ["Content-Type"] = "application/json" }

-- Main Lua state: remember the threads so done() can read their counters.
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local function batch_body(name_prefix, first, count)
   local ops = {}
   for i = first, first + count - 1 do
      ops[#ops + 1] = string.format('{"op":"increment","name":"%s%d","by":1}', name_prefix, i)
   end
   return '{"ops":[' .. table.concat(ops, ",") .. ']}'
end

-- Per-thread state (each wrk thread has its own Lua state).
local fixed_request
local chunk, nchunks, quota, answered
local idle_request
local verify_pending
local finished = false

function init(args)
   -- `id` is the global that setup() gave this thread.
   math.randomseed(os.time() + 7919 * id)

   if mode == "get" then
      fixed_request = wrk.format("GET")
   elseif mode == "post" then
      -- A body of "" makes wrk send "Content-Length: 0" and no Content-Type.
      fixed_request = wrk.format("POST", nil, headers(), "")
   elseif mode == "batch" then
      fixed_request = wrk.format("POST", "/batch", headers(json_headers), batch_body("b:", 0, batch))
   elseif mode == "load" then
      nchunks  = math.ceil(total / batch)
      chunk    = id
      quota    = 0
      for c = id, nchunks - 1, nthreads do quota = quota + 1 end
      answered = 0
      ok = 0 -- global, read by done() through thread:get("ok")
      -- Once this thread has sent its share, its connections keep asking for a
      -- path that is a plain 404, so response() can tell them from the real ones.
      idle_request = wrk.format("GET", "/bench-idle-404")
      -- wrk calls request() once on thread 0's state before the run, only to
      -- check the request parses; that call must not use up a chunk.
      verify_pending = (id == 0)
   end
end

function request()
   if mode == "random" then
      local path = string.format("/counters/%s%d/increment", prefix, math.random(0, names - 1))
      return wrk.format("POST", path, headers(), "")
   elseif mode == "load" then
      if verify_pending then
         verify_pending = false
         return idle_request
      end
      if chunk >= nchunks then return idle_request end
      local first = chunk * batch
      chunk = chunk + nthreads
      if batch == 1 then
         return wrk.format("POST", string.format("/counters/%s%d/increment", prefix, first), headers(), "")
      end
      return wrk.format("POST", "/batch", headers(json_headers), batch_body(prefix, first, math.min(batch, total - first)))
   end
   return fixed_request
end

if mode == "load" then
   function response(status, headers, body)
      if status ~= 404 then -- 404 answers an idle request, see init()
         answered = answered + 1
         if status >= 200 and status < 300 then ok = ok + 1 end
      end
      if answered >= quota and not finished then
         finished = true
         -- wrk's main thread sleeps for the whole -d regardless, so tell the
         -- caller (bench/run.sh) this thread is done; it then sends wrk SIGINT.
         local dir = os.getenv("WRK_DONE_DIR")
         if dir then io.open(dir .. "/thread-" .. id, "w"):close() end
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   local load_ok = 0
   for _, t in ipairs(threads) do load_ok = load_ok + (tonumber(t:get("ok")) or 0) end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"load_ok_requests":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      load_ok))
end
