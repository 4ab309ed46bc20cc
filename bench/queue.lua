-- wrk script for bench/waiting_room.py: one waiting-room request per call, as a random buyer.
-- TOKENS_FILE: lines "<access token> <admission token or ->"; EVENT_ID; QUEUE_MODE: `join`
-- (POST …/queue), `read` (GET …/queue/me) or `book` (POST /bookings, with the admission
-- token when the line has one).
local access, admission = {}, {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  local a, b = line:match("^(%S+) (%S+)$")
  access[#access + 1] = a
  admission[#admission + 1] = b
end
local event_id = os.getenv("EVENT_ID")
local mode = os.getenv("QUEUE_MODE")
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
  local i = math.random(1, #access)
  local headers = {["Authorization"] = "Bearer " .. access[i]}
  if mode == "read" then
    return wrk.format("GET", "/api/v1/events/" .. event_id .. "/queue/me", headers)
  elseif mode == "join" then
    return wrk.format("POST", "/api/v1/events/" .. event_id .. "/queue", headers)
  end
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = prefix .. counter
  if admission[i] ~= "-" then headers["Admission-Token"] = admission[i] end
  return wrk.format("POST", "/api/v1/bookings", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
