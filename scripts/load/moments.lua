-- wrk script: POST batches of BATCH fresh moments (unique ids) to /v1/orgs/ORG/moments.
-- Environment: PLAUDIT_KEY (the organisation key), ORG (default acme), BATCH (moments a request,
-- default 100), QUERY (appended to the path, say "?effects=false").
local key = os.getenv("PLAUDIT_KEY")
local batch = tonumber(os.getenv("BATCH") or "100")
local path = "/v1/orgs/" .. (os.getenv("ORG") or "acme") .. "/moments" .. (os.getenv("QUERY") or "")
local counter = 0
-- Ids unique per run and per wrk thread: a fresh Lua state starts the same random sequence.
local prefix = (os.getenv("RUN") or "r") .. os.time() .. "-" .. tostring({}):sub(8)

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"

local kinds = { "meetup", "answer", "post", "referral" }
-- Moments dated over the 28 days from 30 days ago (midnight UTC), within what a server takes by
-- default (90 days back, 5 minutes ahead).
local first_day = os.time() - 30 * 86400
first_day = first_day - first_day % 86400

request = function()
  local items = {}
  for i = 1, batch do
    counter = counter + 1
    local who = counter % 5000
    local with = (counter * 7 + 1) % 5000
    if with == who then with = (with + 1) % 5000 end
    local day = math.floor(counter / 20000) % 28
    local at = first_day + day * 86400 + (math.floor(counter / 3600) % 24) * 3600 + (math.floor(counter / 60) % 60) * 60 + counter % 60
    items[i] = string.format(
      '{"id":"w%s-%d","stakeholder":"s%d","counterpart":"s%d","kind":"%s","channel":"forum","at":"%s"}',
      prefix, counter, who, with, kinds[counter % 4 + 1], os.date("!%Y-%m-%dT%H:%M:%SZ", at))
  end
  local body = batch == 1 and items[1] or ("[" .. table.concat(items, ",") .. "]")
  return wrk.format(nil, path, nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f, moments/s %.0f, latency p50 %.2f ms, p99 %.2f ms, errors %d\n",
    summary.requests / (summary.duration / 1e6), batch * summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
