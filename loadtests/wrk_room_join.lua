-- wrk script: new visitors join a waiting room, each with two requests: a
-- challenge (no cookie: the server mints a guest identity) then the join with that identity's
-- cookie. The room's difficulty must be 0 (any solution passes: this measures the server).
-- env: KWIKA_EVENT. Prints a JSON summary line: joins (200s of the join), other answers.
local event_id = os.getenv("KWIKA_EVENT")
local base = "/api/events/" .. event_id .. "/room"
local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  joined, other, ready = 0, 0, {}
end

-- A thread's connections share its Lua state: solved challenges wait in `ready`, and whichever
-- connection sends next takes one (answers are told apart by their bodies).
function request()
  local pair = table.remove(ready)
  if pair then
    local body = '{"challenge":"' .. pair.challenge .. '","solution":"0"}'
    return wrk.format("POST", base .. "/join",
                      {["Content-Type"] = "application/json", ["Cookie"] = pair.cookie}, body)
  end
  return wrk.format("GET", base .. "/challenge")
end

function response(status, headers, body)
  local challenge = string.match(body, '"challenge":"([^"]+)"')
  if challenge then
    local cookie = headers["Set-Cookie"] and string.match(headers["Set-Cookie"], "^([^;]+)")
    if status == 200 and cookie then
      table.insert(ready, {cookie = cookie, challenge = challenge})
    else
      other = other + 1
    end
  elseif status == 200 and string.find(body, '"place"', 1, true) then
    joined = joined + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local j, o = 0, 0
  for _, t in ipairs(threads) do j = j + t:get("joined"); o = o + t:get("other") end
  io.write(string.format('KWIKA {"requests": %d, "seconds": %.3f, "joined": %d, "other": %d, ' ..
    '"p50_ms": %.2f, "p99_ms": %.2f}\n', summary.requests, summary.duration / 1e6, j, o,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
