-- wrk script: every request holds one ticket of one package as a guest.
-- env: KWIKA_EVENT, KWIKA_PACKAGE. Prints a JSON summary line (statuses, latency percentiles).
local event_id = os.getenv("KWIKA_EVENT")
local package_id = os.getenv("KWIKA_PACKAGE")
wrk.method = "POST"
wrk.path = "/api/events/" .. event_id .. "/holds"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"items":[{"package_id":' .. package_id .. ',"quantity":1}]}'

-- KWIKA_DELAY_MS paces each connection (offered rate = connections * 1000 / delay per second);
-- unset, every connection sends back to back (the capacity figure).
local pace = tonumber(os.getenv("KWIKA_DELAY_MS") or "0")
if pace > 0 then
  function delay()
    return math.random(0, 2 * pace)  -- jittered so connections do not march in step
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  created, refused, other = 0, 0, 0
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 409 then refused = refused + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local c, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("refused"); o = o + t:get("other")
  end
  io.write(string.format(
    'KWIKA {"requests": %d, "seconds": %.3f, "created": %d, "refused": %d, "other": %d, ' ..
    '"socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, c, r, o,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
