-- wrk script: every request scans one ticket at the gate (POST /api/scan), each thread walking its
-- own share of a file of request bodies (one JSON body per line). env: KWIKA_BODIES (the file),
-- KWIKA_TOKEN, KWIKA_DELAY_MS (pacing, as in wrk_hold.lua). Reads the server's own time from the
-- Server-Timing header into a histogram of 0.05 ms buckets (up to 2 s); prints one JSON summary line.
local token = os.getenv("KWIKA_TOKEN")
local pace = tonumber(os.getenv("KWIKA_DELAY_MS") or "0")
if pace > 0 then
  function delay()
    return math.random(0, 2 * pace)
  end
end

local threads = {}
local counter = 0
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  local n = 0
  for line in io.lines(os.getenv("KWIKA_BODIES")) do
    if n % counter_total() == offset then bodies[#bodies + 1] = line end
    n = n + 1
  end
  next_body, admitted, refused, other, hist = 1, 0, 0, 0, {}
end

function counter_total()
  return tonumber(os.getenv("KWIKA_THREADS") or "2")
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/api/scan", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "Bearer " .. token}, body)
end

function response(status, headers, body)
  if status == 200 then
    if body:find('"result":"admitted"', 1, true) then admitted = admitted + 1
    else refused = refused + 1 end
  else
    other = other + 1
  end
  local timing = headers["Server-Timing"] or headers["server-timing"]
  if timing then
    local ms = tonumber(timing:match("dur=([%d%.]+)"))
    if ms then
      local b = math.min(math.floor(ms * 20), 40000)
      hist[b] = (hist[b] or 0) + 1
    end
  end
end

function done(summary, latency, requests)
  local a, r, o, merged, total = 0, 0, 0, {}, 0
  for _, t in ipairs(threads) do
    a = a + t:get("admitted"); r = r + t:get("refused"); o = o + t:get("other")
    for b, c in pairs(t:get("hist")) do
      merged[b] = (merged[b] or 0) + c
      total = total + c
    end
  end
  local function pct(q)
    local want, seen = q * total, 0
    for b = 0, 40000 do
      seen = seen + (merged[b] or 0)
      if seen >= want and seen > 0 then return (b + 1) / 20 end
    end
    return 0
  end
  io.write(string.format(
    'KWIKA {"requests": %d, "seconds": %.3f, "admitted": %d, "refused": %d, "other": %d, ' ..
    '"socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, ' ..
    '"server_p50_ms": %.2f, "server_p99_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, a, r, o,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    pct(0.5), pct(0.99)))
end
