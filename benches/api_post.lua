-- wrk script: POST /v1/callbacks with a unique E.164 phone per request.
-- REDIAL_TOKEN: a token with callbacks:write; RUN: a digit that differs per run
-- on the same database (phones must be unique per queue while active).
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  run = tonumber(os.getenv("RUN") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("REDIAL_TOKEN")
end

function request()
  counter = counter + 1
  local phone = string.format("+1%d%02d%010d", run, tid, counter)
  return wrk.format(nil, nil, nil, '{"phone":"' .. phone .. '","queue":"q"}')
end

statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("requests %d in %.1f s: %.0f/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
