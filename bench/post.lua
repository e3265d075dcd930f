-- wrk script for bench/run.sh: POSTs one JSON body, optionally with a bearer key, and
-- prints one machine-readable line at the end.
--
--   BENCH_BODY      the JSON body (required)
--   BENCH_KEY       sent as `Authorization: Bearer ...` when set
--   BENCH_REQUESTS  with BENCH_THREADS, BENCH_CONNECTIONS and BENCH_DONE_FILE: send
--                   exactly this many requests; each thread appends a line to
--                   BENCH_DONE_FILE once all of its requests have completed. (wrk itself
--                   runs until -d is over, or until SIGINT, which bench/run.sh sends when
--                   every thread has written its line.)

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local total = tonumber(os.getenv("BENCH_REQUESTS") or "")
if total ~= nil then
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local connections = tonumber(os.getenv("BENCH_CONNECTIONS"))
  local quota = math.floor(total / threads)
  local per_thread = math.floor(connections / threads)
  local done_file = os.getenv("BENCH_DONE_FILE")
  local calls = 0
  -- wrk calls delay() before every request: once per connection when it opens, then
  -- after every completed response. The first `quota` calls send at once; later ones
  -- park their connection, and the call that follows the last completion reports it.
  function delay()
    calls = calls + 1
    if calls <= quota then
      return 0
    end
    if calls == quota + per_thread then
      local f = io.open(done_file, "a")
      f:write("done\n")
      f:close()
    end
    return 3600000
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_s":%.3f,"rps":%.2f,"mb_per_s":%.2f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.bytes / (summary.duration / 1e6) / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    e.connect, e.read, e.write, e.status, e.timeout))
end
