-- wrk script: POST /api/v1/bookings with a fresh Idempotency-Key and a bearer token per request.
-- Tokens come from bench/tokens.txt (one per line); the event id from the EVENT_ID env var.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local event_id = os.getenv("EVENT_ID")
local body = '{"eventId":"' .. event_id .. '","tier":"GA","quantity":1}'
threads = {}
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

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
