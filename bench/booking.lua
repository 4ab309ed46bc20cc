-- wrk script: POST /api/v1/bookings with a fresh Idempotency-Key and a bearer token per request.
-- Tokens come from bench/tokens.txt (one per line); the event id from the EVENT_ID env var.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local event_id = os.getenv("EVENT_ID")
local body = '{"eventId":"' .. event_id .. '","tier":"GA","quantity":1}'
local threads = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  prefix = string.format("%d-%d-%d-", os.time(), tid, math.random(1, 1e9))
  statuses = {}
end

function request()
  counter = counter + 1
  local token = tokens[(counter + tid * 7919) % #tokens + 1]
  return wrk.format("POST", "/api/v1/bookings", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = prefix .. counter,
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, n in pairs(s) do merged[code] = (merged[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(merged) do parts[#parts + 1] = string.format('"%d": %d', code, n) end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), table.concat(parts, ", ")))
end
