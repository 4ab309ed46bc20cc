-- wrk script: POST /reservations (the original partner contract, anonymous-partner mode),
-- one seat per request, partners partner-1..partner-50 in turn. No Idempotency-Key: the
-- contract has none, as its public peers' benchmarks send none.
local counter = 0
local path = os.getenv("RESERVATIONS_PATH") or "/reservations"  -- a peer may want "/reservations/"
threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  threads[#threads + 1] = thread
end

function init(args)
  statuses = {}
end

function request()
  counter = counter + 1
  local body = '{"partnerId":"partner-' .. ((counter + tid * 7919) % 50 + 1) .. '","seats":1}'
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
