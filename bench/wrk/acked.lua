-- Increments one counter and, at the end, prints how many were acknowledged (2xx).
-- Used by bench/loss_window.sh, which kills the server in the middle of the run.
wrk.method = "POST"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
   io.write(string.format("ACKED %d\n", summary.requests - summary.errors.status))
end
