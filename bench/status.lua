-- wrk script: each request GETs the status of an execution picked at random from a file of
-- precomputed, URL-encoded request paths (one a line).
--   wrk -t1 -c32 -d8s --latency -s bench/status.lua http://127.0.0.1:PORT -- paths.txt
-- done() prints one line, "BENCH_RESULT {json}", that the harness parses.

local paths = {}
local count = 0

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open the paths file " .. tostring(args[1]))
  for line in file:lines() do
    if #line > 0 then
      count = count + 1
      paths[count] = line
    end
  end
  file:close()
  assert(count > 0, "the paths file is empty")
  math.randomseed(os.time())
end

function request()
  return wrk.format("GET", paths[math.random(count)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
