-- wrk script of the benchmark: one scenario per run, one connection per wrk thread (-t N -c N), so
-- each thread's request() and response() strictly alternate and per-thread state is per-connection.
-- Parameters come from the environment (BENCH_*) because `response` must be defined, or not, when
-- wrk loads the script, before init() sees any argument.
local env = os.getenv
local mode = env("BENCH_MODE")
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  prefix = env("BENCH_PREFIX")
  id_prefix = env("BENCH_ID_PREFIX")
  n_ids = tonumber(env("BENCH_N_IDS"))
  seq = 0
  syncs = 0
  conflicts = 0
  version = nil
  syncing = true
  local payload = read_file(env("BENCH_PAYLOAD_FILE"))
  body_head = '{"manifest":"' .. env("BENCH_MANIFEST") .. '","payload":"' .. payload .. '","version_number":'
  json = { ["Content-Type"] = "application/json" }
  if mode == "batch" then
    local size = tonumber(env("BENCH_BATCH_SIZE"))
    local ids = {}
    for i = 0, size - 1 do
      ids[#ids + 1] = '"' .. id_prefix .. ((tid * size + i) % n_ids) .. '"'
    end
    batch_body = '{"persistence_ids":[' .. table.concat(ids, ",") .. ']}'
    batch_path = env("BENCH_BATCH_PATH")
  end
end

function request()
  seq = seq + 1
  if mode == "get" then
    return wrk.format("GET", prefix .. id_prefix .. ((tid * 7 + seq) % n_ids))
  elseif mode == "put" then
    local path = prefix .. id_prefix .. tid .. "-" .. (seq % 8)
    return wrk.format("PUT", path, json, body_head .. seq .. "}")
  elseif mode == "batch" then
    return wrk.format("POST", batch_path, json, batch_body)
  end
  -- cput: read the current version first (and after any refusal), then compare-and-set.
  local path = prefix .. id_prefix .. tid
  if syncing then
    syncs = syncs + 1
    return wrk.format("GET", path)
  end
  local headers = { ["Content-Type"] = "application/json" }
  local next_version = 1
  if version == nil then
    headers["If-None-Match"] = "*"
  else
    headers["If-Match"] = '"' .. version .. '"'
    next_version = version + 1
  end
  return wrk.format("PUT", path, headers, body_head .. next_version .. "}")
end

if mode == "cput" then
  function response(status, headers, body)
    if status == 404 then
      version = nil
      syncing = false
      return
    end
    local etag = headers["etag"] or headers["ETag"] or headers["Etag"]
    if status < 300 and etag ~= nil then
      version = tonumber((string.gsub(etag, '[W/"]', "")))
      syncing = false
    else
      if status == 412 or status == 409 then
        conflicts = conflicts + 1
      end
      syncing = true
    end
  end
end

function done(summary, latency, requests)
  local total_syncs, total_conflicts = 0, 0
  for _, thread in ipairs(threads) do
    total_syncs = total_syncs + (thread:get("syncs") or 0)
    total_conflicts = total_conflicts + (thread:get("conflicts") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non_2xx=%d socket_errors=%d syncs=%d conflicts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout, total_syncs, total_conflicts))
end
