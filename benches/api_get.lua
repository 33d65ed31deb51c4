-- wrk script: GET /v1/callbacks?limit=100 (first pages of the book).
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("REDIAL_TOKEN")
end

function done(summary, latency, requests)
  io.write(string.format("requests %d in %.1f s: %.0f/s; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
