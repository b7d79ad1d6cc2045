-- wrk script: reserves distinct products through the gateway (POST /reservation), as the
-- anonymous buyer of a dev-mode mesh (script/server), so no request is refused for a taken
-- product. Thread t of n takes products f+t, f+t+n, f+t+2n, ...; give n and the first
-- product id f (default 1) after `--`. The gateway's per-buyer rate limit must be off
-- (RESERVE_RATE_PER_SEC=0), since every request is the same buyer's:
--   wrk -t2 -c100 -d10s -s script/wrk/reserve.lua http://127.0.0.1:8080 -- 2 1
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

local product, stride
function init(args)
  stride = tonumber(args[1]) or 1
  product = (tonumber(args[2]) or 1) + thread_index
end

function request()
  local body = string.format('{"productId":%d,"reservationStatus":"01"}', product)
  product = product + stride
  return wrk.format("POST", "/reservation", { ["Content-Type"] = "application/json" }, body)
end
