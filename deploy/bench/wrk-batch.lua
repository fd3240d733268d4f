-- wrk script: realistic tracker batches, every one unique, as browsers send them.
--
--   wrk -t1 -c64 -d10s -s deploy/bench/wrk-batch.lua http://127.0.0.1:8081 -- SITE_KEY [ORIGIN] [pool|fresh]
--
-- Each request is one batch of 5 events (about 1 KB): a pageview with referrer, title and UTM
-- parameters, a scroll, two clicks and a time event, with
--   * a batch_id never sent before (thread number, counter and a random part), a session and a
--     pageview id of its own;
--   * a page path, selectors, link texts, a referrer and a campaign drawn from lists, with a
--     numbered article or product, so URLs and selectors vary the way real traffic does;
--   * a real browser User-Agent (desktop and mobile Chrome, Firefox, Safari, Edge, Samsung
--     Internet), with the version varied: about 200 distinct strings;
--   * an X-Forwarded-For address drawn from the whole public IPv4 space (ingest trusts it only
--     when the bench starts it with CP_TRUSTED_PROXIES=127.0.0.1), and the site's Origin.
-- Nothing here is a bot: every batch is one ingest has to publish.
--
-- So that the load client costs little CPU beside the server (on a small machine it shares the
-- cores), each thread builds a pool of 2,000 such requests at start, each with its own batch,
-- session, page, URL, referrer, selectors, User-Agent and client address, and every request
-- splices a fresh batch_id (fixed length, so Content-Length stays right) into one of them.

local key = "missing-key"
local origin = "https://www.example-shop.com"
-- "pool" (default): splice a fresh batch_id into one of 2,000 pre-built requests (cheap for
-- the client); "fresh": build every request whole, the way a first script would.
local mode = "pool"
local counter = 0


local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  key = args[1] or key
  origin = args[2] or origin
  mode = args[3] or mode
  assert(mode == "pool" or mode == "fresh", "mode must be pool or fresh, not " .. mode)
  thread_no = thread_no or 0
  math.randomseed(os.time() * 1000 + thread_no * 7919)
end

local pages = {
  "/", "/pricing", "/features", "/blog/launch-week", "/blog/post-%d", "/docs/getting-started",
  "/products/item-%d", "/signup", "/about", "/customers/case-%d", "/changelog", "/contact",
}
local titles = { "Home", "Pricing", "Features", "Launch week", "Blog", "Getting started",
  "Product", "Sign up", "About us", "Customer story", "Changelog", "Contact" }
local referrers = {
  "", "https://www.google.com/", "https://www.bing.com/search?q=landing+page+analytics",
  "https://news.ycombinator.com/item?id=%d", "https://t.co/AbC%d", "https://duckduckgo.com/",
  "https://www.reddit.com/r/startups/comments/%d/", "https://www.linkedin.com/feed/",
  "https://github.com/", "https://www.producthunt.com/posts/convertpulse",
}
local sources = { "newsletter", "twitter", "google", "producthunt", "partner_%d", "linkedin" }
local mediums = { "email", "social", "cpc", "referral" }
local campaigns = { "spring_sale", "launch", "retargeting_%d", "webinar" }
local selectors = {
  "button#cta", "a.nav-link", "button.signup", "a#pricing-link", "div.card:nth-child(%d) > a",
  "button[data-cp-track=\"demo\"]", "a.footer-link", "button#plan-%d", "a.btn.btn-primary",
  "form#newsletter > button",
}
local texts = { "Start free trial", "Pricing", "Sign up", "Learn more", "Book a demo",
  "Read more", "Get started", "Choose plan", "", "Contact sales" }
local hrefs = { "/signup", "/pricing", "https://docs.example-shop.com/", "/blog/post-%d", "", "/contact" }
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%d.0) Gecko/20100101 Firefox/%d.0",
  "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0",
  "Mozilla/5.0 (Android 14; Mobile; rv:%d.0) Gecko/%d.0 Firefox/%d.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.%d Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.%d Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPad; CPU OS 17_%d like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.%d Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%d.0.6367.88 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36 Edg/%d.0.2478.80",
  "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/%d.0.0.0 Mobile Safari/537.36",
}

local random = math.random
local function pick(list)
  local item = list[random(#list)]
  -- Numbered entries (an article, a product, a thread) spread over a few hundred values.
  return (item:gsub("%%d", function() return tostring(random(300)) end))
end

local function agent()
  local template = agents[random(#agents)]
  -- Chrome, Edge and Firefox majors; Safari and iOS versions are 17.x.
  local version = template:find("Version/17", 1, true) and tostring(random(0, 6)) or tostring(random(110, 131))
  return (template:gsub("%%d", version))
end

local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local function id(n)
  local out = {}
  for i = 1, n do
    local k = random(62)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function build(batch_id)
  local session_id = "s_" .. id(16)
  local page_id = "p_" .. id(16)
  local n = random(#pages)
  local path = pages[n]:gsub("%%d", function() return tostring(random(300)) end)
  local url = string.format("https://www.example-shop.com%s?utm_source=%s&utm_medium=%s&utm_campaign=%s",
    path, pick(sources), pick(mediums), pick(campaigns))
  local ts = os.time() * 1000 + random(999)
  local depth = random(10, 100)
  local common = string.format('"ts":%d,"page_id":"%s","url":%s', ts, page_id, json_string(url))
  local events = {
    string.format('{"type":"pageview",%s,"referrer":%s,"title":%s,"new_session":%s}',
      common, json_string(pick(referrers)), json_string(titles[n] .. " | Example Shop"),
      random(3) == 1 and "true" or "false"),
    string.format('{"type":"scroll",%s,"depth":%d,"prev":%d}', common, depth, random(0, depth - 1)),
    string.format('{"type":"click",%s,"selector":%s,"text":%s,"href":%s}',
      common, json_string(pick(selectors)), json_string(pick(texts)), json_string(pick(hrefs))),
    string.format('{"type":"click",%s,"selector":%s,"text":%s}',
      common, json_string(pick(selectors)), json_string(pick(texts))),
    string.format('{"type":"time",%s,"seconds":%.1f}', common, random(1, 300) / 10),
  }
  local body = string.format('{"key":"%s","batch_id":"%s","session_id":"%s","events":[%s]}',
    key, batch_id, session_id, table.concat(events, ","))
  local headers = {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["Origin"] = origin,
    ["User-Agent"] = agent(),
    ["X-Forwarded-For"] = string.format("%d.%d.%d.%d", random(1, 223), random(0, 255), random(0, 255), random(1, 254)),
  }
  return wrk.format("POST", "/api/events/batch", headers, body)
end

-- A batch_id of exactly 24 characters: the thread, a counter and a random tail.
local ID_LEN = 24
local PLACEHOLDER = string.rep("Z", ID_LEN)
local POOL = 2000
local pool = {}

local function batch_id()
  counter = counter + 1
  local head = string.format("w%d_%x_", thread_no, counter)
  return head .. id(ID_LEN - #head)
end

function request()
  if mode == "fresh" then
    return build(batch_id())
  end
  if #pool == 0 then
    for i = 1, POOL do
      local req = build(PLACEHOLDER)
      local at = req:find(PLACEHOLDER, 1, true)
      pool[i] = { req:sub(1, at - 1), req:sub(at + ID_LEN) }
    end
  end
  local parts = pool[random(POOL)]
  return parts[1] .. batch_id() .. parts[2]
end

function done(summary, latency, requests)
  -- One line a script can read: requests per second and latency percentiles in µs.
  io.write(string.format("WRK_RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
