//! History: what a site's imported history costs its stats (issue 23; `make bench-history`,
//! docs/benchmarks.md "History: 400 days imported").
//!
//! ```text
//! bench_history             # tunables from the environment, defaults in brackets:
//!   BENCH_DAYS (400)        days of history in the import, ending 4 days ago
//!   BENCH_PAGES (1200)      distinct pages a day in the export (the import keeps a day's 1,000
//!                           with the most pageviews and folds the rest into `(other)`)
//!   BENCH_CATALOGUE (4000)  pages the days draw from (a moving window: new posts, campaigns)
//!   BENCH_PAGEVIEWS (40000) pageviews of an average imported day (weekends fewer, growth)
//!   BENCH_LIVE_BATCHES (1500) live batches on each of the last 4 days: today's through
//!                           ingest, the 3 before through the aggregator's flush code
//!   BENCH_WARMUP (20), BENCH_QUERIES (200)  requests per view and site: warm-up, then timed
//!                           one at a time, then again BENCH_CONCURRENCY (8) at a time
//!   BENCH_MEM_REQUESTS (48) 12-month requests per memory phase (1, 8 and 16 at a time)
//!   BENCH_WRK_DURATION (30) seconds of each wrk run (0: no wrk)
//!   BENCH_PERF (0)          1: `perf record` of the api and the stand-in during the history
//!                           site's 12-month run (one at a time), into BENCH_PERF_OUT
//!                           (perf-history.data); `perf report -i it --sort comm,dso,sym`
//!   BENCH_SEED (1)
//!   CP_BIN_DIR              the services run (the script passes target/release)
//! ```
//!
//! A real stack (`cp_tests::stack::Stack`: nats-server, the MongoDB-wire stand-in, ingest, the
//! aggregator and the api, release builds) with two sites of one account, in
//! `Europe/Berlin`: **history** gets an export zip of `BENCH_DAYS` busy days through
//! `POST /api/sites/{id}/imports` (built with `shared::imports::write_zip`: 1,000+ pages, 150
//! sources, 60 campaigns, 10 mediums, 120 countries, 3 devices, 15 browsers, 10 OS and 40
//! custom events a day, counts skewed like real traffic), and the bench waits until the
//! aggregator lists it `done`. **baseline** gets no import. Both then get the same live
//! batches on the last 4 days, so each view of history over the same view of baseline is what
//! the imported history costs. The two sites' 12-month pageviews (site-wide and of the page
//! filter) must differ by exactly the imported pageviews in the range (exit 1 if not).
//!
//! Measured over HTTP with the real api (latency includes HTTP and JSON), per view
//! (`timeframe=30d`, `timeframe=90d`, `from`/`to` of the last 366 days, and that with
//! `page=/pricing`) and site: p50, p99 and max, one at a time and `BENCH_CONCURRENCY` at a time;
//! per request of the sequential run the documents read (`convertpulse_api_stats_documents_read`),
//! the bytes the stand-in sent the api (its connections' `bytes_received`, from `ss -tinp`),
//! the CPU of the api and of the stand-in (`/proc/<pid>/stat`) and the answer's size. The floor:
//! `/healthz`. Then the api is restarted and its memory read (`VmRSS`, sampled every 2 ms, and
//! `VmHWM` reset through `clear_refs`) idle and while 1, 8 and 16 12-month requests run at once.
//! Last, wrk (an outside client) against both sites' 12-month URL, 1 and `BENCH_CONCURRENCY`
//! connections.

use std::{
    collections::BTreeMap,
    io::{Cursor, Write as _},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{Datelike, Duration as Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use cp_tests::{
    bench::{CAMPAIGNS, CATEGORIES, Perf, Rng, TOPICS, clock_ticks, cpu_secs, env_num, loadavg},
    client::Api,
    stack::{Proc, Stack},
    v2::PastWriter,
};
use futures::StreamExt;
use mongodb::bson::{RawDocumentBuf, doc};
use serde_json::{Value, json};
use shared::{
    audience::{Browser, Country, Device, Os},
    event::Event,
    ids::BatchId,
    imports::{ImportedDay, NamedRow, PageRow, VisitDim},
    message::BatchMessage,
    names::collections as c,
    urls,
};

const TZ_NAME: &str = "Europe/Berlin";
const DOMAIN: &str = "www.example-shop.com";
const BASELINE_DOMAIN: &str = "shop.example.org";
/// The page of the page-filter view: a leader, in every imported day.
const PAGE: &str = "/pricing";
/// Days of live traffic, today included: today's through ingest, the others written as the
/// aggregator would have written them then.
const LIVE_DAYS: i64 = 4;
/// The 12-month view: the longest custom range the api answers (`MAX_RANGE_DAYS`).
const YEAR_DAYS: i64 = 366;
/// Days per import when the whole history as one upload times out.
const IMPORT_PART_DAYS: usize = 100;
/// Pages every imported day has, in a near-stable order (the leaders).
const STABLE_PAGES: usize = 200;

struct Opts {
    days: i64,
    pages: usize,
    catalogue: usize,
    pageviews: f64,
    live_batches: usize,
    warmup: usize,
    queries: usize,
    concurrency: usize,
    mem_requests: usize,
    wrk_duration: u64,
    perf: bool,
    perf_out: String,
    seed: u64,
}

impl Opts {
    fn from_env() -> anyhow::Result<Self> {
        let o = Self {
            days: env_num("BENCH_DAYS", 400)?,
            pages: env_num("BENCH_PAGES", 1200)?,
            catalogue: env_num("BENCH_CATALOGUE", 4000)?,
            pageviews: env_num("BENCH_PAGEVIEWS", 40_000.0)?,
            live_batches: env_num("BENCH_LIVE_BATCHES", 1500)?,
            warmup: env_num("BENCH_WARMUP", 20)?,
            queries: env_num("BENCH_QUERIES", 200)?,
            concurrency: env_num("BENCH_CONCURRENCY", 8)?,
            mem_requests: env_num("BENCH_MEM_REQUESTS", 48)?,
            wrk_duration: env_num("BENCH_WRK_DURATION", 30)?,
            perf: env_num("BENCH_PERF", 0)? != 0,
            perf_out: std::env::var("BENCH_PERF_OUT").unwrap_or_else(|_| "perf-history.data".into()),
            seed: env_num("BENCH_SEED", 1)?,
        };
        if !(1..=shared::imports::MAX_DAYS).contains(&o.days)
            || o.pages <= STABLE_PAGES
            || o.catalogue < o.pages + STABLE_PAGES
            || o.queries < 10
            || o.concurrency < 1
        {
            bail!(
                "BENCH_DAYS 1..={}, BENCH_PAGES > {STABLE_PAGES}, BENCH_CATALOGUE >= BENCH_PAGES + {STABLE_PAGES}, \
                 BENCH_QUERIES >= 10 and BENCH_CONCURRENCY >= 1, please",
                shared::imports::MAX_DAYS
            );
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// The generator.

const LEADERS: &[&str] = &[
    "/",
    "/pricing",
    "/features",
    "/signup",
    "/blog",
    "/docs",
    "/login",
    "/about",
    "/customers",
    "/integrations",
    "/contact",
    "/changelog",
    "/security",
    "/docs/install",
    "/docs/snippet",
    "/docs/goals",
    "/docs/api",
    "/compare/plausible",
    "/compare/google-analytics",
    "/templates",
    "/careers",
    "/partners",
    "/press",
    "/legal/privacy",
];
const SEARCH: &[&str] = &["Google", "Bing", "DuckDuckGo", "Ecosia", "Yahoo!", "Brave", "Qwant", "Yandex"];
const SOCIAL: &[&str] =
    &["Hacker News", "Reddit", "Twitter", "LinkedIn", "Facebook", "YouTube", "GitHub", "Product Hunt", "Mastodon"];
const MEDIUMS: &[&str] =
    &["cpc", "email", "social", "referral", "display", "affiliate", "newsletter", "partner", "video", "sms"];
/// 120 countries, the largest audiences first.
const COUNTRY_CODES: &str = "US DE GB FR IN BR CA NL ES IT PL SE JP AU CH AT BE DK NO FI IE PT CZ RO HU GR TR MX AR CL \
    CO PE ZA NG KE EG MA IL AE SA QA KR TW HK SG MY TH VN ID PH NZ UA SK SI HR RS BG LT LV EE IS \
    LU MT CY BA MK AL ME MD BY GE AM AZ KZ UZ PK BD LK NP CN MN KH LA MM BN PG FJ JM TT DO CR PA \
    GT HN SV NI CU PR VE EC BO PY UY GH CI SN CM ET TZ UG RW ZM ZW BW NA MZ AO DZ TN LY JO LB KW";
const BROWSERS: &[&str] = &[
    "Chrome",
    "Safari",
    "Firefox",
    "Microsoft Edge",
    "Samsung Internet",
    "Opera",
    "Brave",
    "Vivaldi",
    "Chrome Webview",
    "Safari (in-app)",
    "Firefox Mobile",
    "Yandex Browser",
    "UC Browser",
    "DuckDuckGo Privacy Browser",
    "Ecosia",
];
const OSES: &[&str] =
    &["Windows", "Mac", "iOS", "Android", "GNU/Linux", "Chrome OS", "Ubuntu", "iPadOS", "Fedora", "FreeBSD"];
const EVENTS: &[&str] = &[
    "Signup",
    "Outbound Link: Click",
    "File Download",
    "Purchase",
    "Form: Submit",
    "Video Play",
    "Newsletter",
    "Trial Start",
    "Demo Request",
    "Pricing Toggle",
];

/// Page `i` of the catalogue: the leaders, then blog posts, products, guides and campaign pages.
fn page_path(i: usize) -> String {
    if let Some(p) = LEADERS.get(i) {
        return (*p).to_string();
    }
    match i % 4 {
        0 => format!("/blog/{}-{i}", TOPICS[i % TOPICS.len()]),
        1 => format!("/products/{}/item-{i}", CATEGORIES[i % CATEGORIES.len()]),
        2 => format!("/docs/guides/{}-{i}", TOPICS[(i / 4) % TOPICS.len()]),
        _ => format!("/lp/{}-{i}", CAMPAIGNS[i % CAMPAIGNS.len()]),
    }
}

struct Names {
    sources: Vec<String>,
    campaigns: Vec<String>,
    countries: Vec<String>,
    events: Vec<String>,
}

impl Names {
    fn new() -> Self {
        let mut sources = vec![urls::DIRECT.to_string()];
        sources.extend(SEARCH.iter().chain(SOCIAL).map(|s| s.to_string()));
        let partners = 150 - sources.len();
        sources.extend((0..partners).map(|i| format!("partner{i}.example.net")));
        Self {
            sources,
            campaigns: (0..60).map(|i| format!("{}-{}", CAMPAIGNS[i % CAMPAIGNS.len()], 2025 + i / 30)).collect(),
            countries: COUNTRY_CODES.split_whitespace().map(str::to_string).collect(),
            events: (0..40)
                .map(|i| match EVENTS.get(i) {
                    Some(e) => (*e).to_string(),
                    None => format!("Custom Event {i}"),
                })
                .collect(),
        }
    }
}

/// `total` split over `names` by rank (`1 / (r + 1)^s`, with noise), every name at least 1.
fn skewed(names: &[String], total: f64, s: f64, rng: &mut Rng) -> Vec<(String, u64)> {
    let weights: Vec<f64> = (0..names.len()).map(|r| rng.jitter(1.0 / ((r + 1) as f64).powf(s), 0.3)).collect();
    let sum: f64 = weights.iter().sum();
    names.iter().zip(weights).map(|(n, w)| (n.clone(), (total * w / sum).round().max(1.0) as u64)).collect()
}

/// Imported day number `n` (from 0): busy, with the skew of real traffic.
fn imported_day(date: NaiveDate, n: usize, o: &Opts, names: &Names, rng: &mut Rng) -> ImportedDay {
    let weekend = date.weekday().num_days_from_monday() >= 5;
    let growth = 0.7 + 0.6 * n as f64 / o.days as f64;
    let total = rng.jitter(o.pageviews * if weekend { 0.65 } else { 1.0 } * growth, 0.15);
    // The leaders every day, neighbours swapping now and then; the rest a window that moves
    // through the catalogue, in an order of its own each day.
    let mut ids: Vec<usize> = (0..STABLE_PAGES).collect();
    for i in 1..STABLE_PAGES {
        if rng.chance(25) {
            ids.swap(i - 1, i);
        }
    }
    let rest = o.catalogue - STABLE_PAGES;
    let start = (n * 9) % rest;
    let mut window: Vec<usize> = (0..o.pages - STABLE_PAGES).map(|k| STABLE_PAGES + (start + k) % rest).collect();
    rng.shuffle(&mut window);
    ids.extend(window);
    let weights: Vec<f64> = (0..ids.len()).map(|r| 1.0 / ((r + 1) as f64).powf(1.07)).collect();
    let sum: f64 = weights.iter().sum();
    let pages: Vec<PageRow> = ids
        .iter()
        .zip(&weights)
        .map(|(&id, w)| {
            let pageviews = rng.jitter(total * w / sum, 0.2).round().max(1.0) as u64;
            let entrances = pageviews * if id < 30 { 45 } else { 20 + rng.below(20) } / 100;
            PageRow {
                path: page_path(id),
                visitors: (pageviews * 8 / 10).max(1),
                pageviews,
                scroll: pageviews * (35 + rng.below(50)),
                entrances,
                bounces: entrances * (30 + rng.below(30)) / 100,
                exits: pageviews * (25 + rng.below(25)) / 100,
            }
        })
        .collect();
    let pageviews: u64 = pages.iter().map(|p| p.pageviews).sum();
    let visits: u64 = pages.iter().map(|p| p.entrances).sum::<u64>().max(1);
    let bounces: u64 = pages.iter().map(|p| p.bounces).sum();
    let v = visits as f64;
    let mut named = Vec::new();
    let mut add = |dim: VisitDim, rows: Vec<(String, u64)>| {
        named.extend(rows.into_iter().map(|(name, visits)| NamedRow { dim, name, visits }));
    };
    add(VisitDim::Source, skewed(&names.sources, v, 1.2, rng));
    add(VisitDim::Campaign, skewed(&names.campaigns, v * 0.25, 1.0, rng));
    let mediums: Vec<String> = MEDIUMS.iter().map(|m| m.to_string()).collect();
    add(VisitDim::Medium, skewed(&mediums, v * 0.3, 1.1, rng));
    add(VisitDim::Country, skewed(&names.countries, v, 1.3, rng));
    let devices = [("desktop", 0.58), ("mobile", 0.37), ("tablet", 0.05)];
    add(VisitDim::Device, devices.iter().map(|(d, share)| (d.to_string(), (v * share).round().max(1.0) as u64)).collect());
    let browsers: Vec<String> = BROWSERS.iter().map(|b| b.to_string()).collect();
    add(VisitDim::Browser, skewed(&browsers, v, 1.5, rng));
    let oses: Vec<String> = OSES.iter().map(|b| b.to_string()).collect();
    add(VisitDim::Os, skewed(&oses, v, 1.4, rng));
    let events = skewed(&names.events, v * 0.2, 1.2, rng);
    ImportedDay {
        date: date.format("%Y-%m-%d").to_string(),
        visitors: visits * 85 / 100,
        pageviews,
        visits,
        bounces,
        visit_duration: visits * 95,
        pages,
        named,
        events,
    }
}

/// The User-Agents of the live traffic, with what ingest derives from each.
const AGENTS: &[(&str, Device, Browser, Os)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        Device::Desktop,
        Browser::Chrome,
        Os::Windows,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        Device::Desktop,
        Browser::Safari,
        Os::MacOs,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", Device::Desktop, Browser::Firefox, Os::Linux),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
        Device::Desktop,
        Browser::Edge,
        Os::Windows,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        Device::Mobile,
        Browser::Chrome,
        Os::Android,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        Device::Mobile,
        Browser::Safari,
        Os::Ios,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        Device::Tablet,
        Browser::Safari,
        Os::Ios,
    ),
];

/// One live batch, the same for both sites.
struct LiveBatch {
    session: String,
    /// The visitor: its address and its User-Agent's index.
    visitor: u64,
    agent: usize,
    address: String,
    country: &'static str,
    /// Milliseconds after the day's first session started.
    offset_ms: i64,
    events: Vec<Value>,
}

/// The live batches of one day: sessions of one to three pages, each page a batch (pageview,
/// scroll, time, a click on half of them, a `Signup` on some last pages).
fn live_day(n: usize, rng: &mut Rng, day: i64) -> Vec<LiveBatch> {
    let countries: Vec<&'static str> = COUNTRY_CODES.split_whitespace().take(30).collect();
    let mut out = Vec::with_capacity(n);
    let mut s = 0;
    while out.len() < n {
        s += 1;
        let session = format!("live{day}x{s:06}");
        let visitor = rng.next_u64();
        let agent = rng.zipf(AGENTS.len(), 1.0);
        let address = format!("{}.{}.{}.{}", 1 + rng.below(223), rng.below(256), rng.below(256), 1 + rng.below(254));
        let country = countries[rng.zipf(countries.len(), 1.2)];
        let start = rng.below(22 * 3_600_000) as i64;
        let pages = 1 + rng.zipf(3, 1.5);
        for k in 0..pages.min(n - out.len()) {
            let path = page_path(rng.zipf(300, 1.07));
            let url = match (k, rng.below(10)) {
                (0, 0) => format!(
                    "https://{DOMAIN}{path}?utm_source=newsletter&utm_medium=email&utm_campaign={}",
                    CAMPAIGNS[rng.below(CAMPAIGNS.len() as u64) as usize]
                ),
                _ => format!("https://{DOMAIN}{path}"),
            };
            let referrer = match (k, rng.below(10)) {
                (0, 0..=3) => String::new(),
                (0, 4..=7) => "https://www.google.com/".to_string(),
                (0, _) => format!("https://partner{}.example.net/post/{}", rng.below(40), rng.below(500)),
                _ => format!("https://{DOMAIN}/"),
            };
            let ts = 1_764_000_000_000_i64 + start + k as i64 * 60_000;
            let id = format!("{session}p{k}");
            let depth = [25, 50, 75, 100][rng.zipf(4, 0.8)];
            let mut events = vec![
                json!({"type": "pageview", "ts": ts, "page_id": id, "url": url, "referrer": referrer,
                       "title": "Example shop", "new_session": k == 0}),
                json!({"type": "scroll", "ts": ts + 4000, "page_id": id, "url": url, "depth": depth, "prev": 0}),
            ];
            if rng.chance(50) {
                events.push(json!({"type": "click", "ts": ts + 6000, "page_id": id, "url": url,
                                   "selector": format!("a.card:nth-child({})", 1 + rng.below(12)), "text": "Read more"}));
            }
            events.push(json!({"type": "time", "ts": ts + 9000, "page_id": id, "url": url, "seconds": 5 + rng.below(90)}));
            if k + 1 == pages && rng.chance(5) {
                events.push(json!({"type": "event", "ts": ts + 9500, "page_id": id, "url": url, "name": "Signup"}));
            }
            out.push(LiveBatch {
                session: session.clone(),
                visitor,
                agent,
                address: address.clone(),
                country,
                offset_ms: start + k as i64 * 60_000,
                events,
            });
        }
    }
    out
}

/// A live batch's events on `domain`'s pages (they are generated on [`DOMAIN`]'s).
fn events_on(b: &LiveBatch, domain: &str) -> Vec<Value> {
    b.events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            for field in ["url", "referrer"] {
                if let Some(v) = e[field].as_str() {
                    e[field] = json!(v.replace(DOMAIN, domain));
                }
            }
            e
        })
        .collect()
}

/// A live batch as the aggregator gets it, received at `received_at` for `site_id`.
fn message(b: &LiveBatch, site_id: &str, domain: &str, received_at: i64, n: usize) -> anyhow::Result<BatchMessage> {
    let (_, device, browser, os) = AGENTS[b.agent];
    let events = events_on(b, domain)
        .into_iter()
        .map(|e| serde_json::from_value::<Event>(e).context("an event of the wire format"))
        .collect::<anyhow::Result<Vec<Event>>>()?;
    Ok(BatchMessage {
        site_id: site_id.to_string(),
        batch_id: BatchId::new(format!("past_{site_id}_{n}")),
        session_id: b.session.clone(),
        received_at,
        visitor: format!("{:032x}", b.visitor),
        timezone: TZ_NAME.into(),
        domain: domain.into(),
        device,
        browser,
        os,
        country: Country::parse(b.country),
        currency: "USD".into(),
        events,
    })
}

// ---------------------------------------------------------------------------------------------
// /proc figures.

/// utime + stime of `pid`, in seconds.
fn cpu(pid: u32, ticks: f64) -> f64 {
    cpu_secs(&pid.to_string(), ticks).unwrap_or(f64::NAN)
}

/// Bytes the connections of `pid` to `port` have received (`ss -tinp`, the kernel's
/// `tcpi_bytes_received` of each socket): what the stand-in sent the api.
fn bytes_from(pid: u32, port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-tinpH", "state", "established", "dport", &format!("= :{port}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let needle = format!("pid={pid},");
    let mut lines = out.lines();
    let mut total = 0;
    while let Some(line) = lines.next() {
        if !line.contains(&needle) {
            continue;
        }
        // The socket's counters are on the next line.
        let info = lines.next().unwrap_or_default();
        total += info
            .split_whitespace()
            .find_map(|f| f.strip_prefix("bytes_received:").and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
    }
    total
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|r| r.strip_prefix(':'))
                    .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS (`echo 5 > /proc/<pid>/clear_refs`).
fn reset_peak(pid: u32) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/clear_refs"))
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

/// The highest `VmRSS` of `pid` while it runs, sampled every 2 ms on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS"));
                // The sampling period: a request of this bench lasts tens of milliseconds or more.
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// What a run of requests took.
#[derive(Default)]
struct Run {
    /// Milliseconds, sorted.
    ms: Vec<f64>,
    failed: usize,
    first_failure: Option<String>,
    body_bytes: usize,
    wall: Duration,
}

impl Run {
    fn pct(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let i = ((q * self.ms.len() as f64).ceil() as usize).clamp(1, self.ms.len()) - 1;
        self.ms[i]
    }

    fn max(&self) -> f64 {
        self.ms.last().copied().unwrap_or(f64::NAN)
    }

    fn mean(&self) -> f64 {
        self.ms.iter().sum::<f64>() / self.ms.len().max(1) as f64
    }

    fn cell(&self) -> String {
        let failed = if self.failed > 0 { format!(" ({} failed)", self.failed) } else { String::new() };
        format!("{} / {} / {}{failed}", ms(self.pct(0.5)), ms(self.pct(0.99)), ms(self.max()))
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `n` GETs of `url`, `concurrency` at a time.
async fn run(http: &reqwest::Client, url: &str, token: &str, n: usize, concurrency: usize) -> Run {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Run::default());
    let started = Instant::now();
    let worker = || async {
        while next.fetch_add(1, Ordering::Relaxed) < n {
            let t = Instant::now();
            let res = http.get(url).bearer_auth(token).send().await;
            let outcome = match res {
                Ok(r) if r.status().is_success() => r.bytes().await.map(|b| b.len()).map_err(|e| e.to_string()),
                Ok(r) => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            };
            let elapsed = t.elapsed().as_secs_f64() * 1e3;
            let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Ok(bytes) => {
                    o.ms.push(elapsed);
                    o.body_bytes += bytes;
                }
                Err(e) => {
                    o.failed += 1;
                    o.first_failure.get_or_insert(e);
                }
            }
        }
    };
    futures::future::join_all((0..concurrency).map(|_| worker())).await;
    let mut out = out.into_inner().unwrap_or_else(PoisonError::into_inner);
    out.wall = started.elapsed();
    out.ms.sort_by(f64::total_cmp);
    out
}

/// The api's `convertpulse_api_stats_documents_read` sum and count.
async fn docs_read(http: &reqwest::Client, metrics_url: &str) -> (f64, f64) {
    let text = match http.get(metrics_url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    (get("convertpulse_api_stats_documents_read_sum"), get("convertpulse_api_stats_documents_read_count"))
}

/// The sequential run of one view of one site, with what each request cost.
struct Measured {
    seq: Run,
    conc: Run,
    docs: f64,
    api_cpu_ms: f64,
    nx_cpu_ms: f64,
    read_bytes: f64,
}

struct Pids {
    api: u32,
    nx: u32,
    nx_port: u16,
    ticks: f64,
}

async fn measure(
    http: &reqwest::Client,
    stack: &Stack,
    pids: &Pids,
    url: &str,
    token: &str,
    o: &Opts,
    perf: Option<&str>,
) -> anyhow::Result<Measured> {
    let warm = run(http, url, token, o.warmup, 1).await;
    if let Some(e) = warm.first_failure {
        bail!("{url}: {e}");
    }
    let metrics = stack.metrics_url(Proc::Api);
    let out = perf;
    let perf = match perf {
        Some(out) => Some(Perf::start(&[pids.api, pids.nx], out, false)?),
        None => None,
    };
    let (d0, n0) = docs_read(http, &metrics).await;
    let (api0, nx0, io0) = (cpu(pids.api, pids.ticks), cpu(pids.nx, pids.ticks), bytes_from(pids.api, pids.nx_port));
    let seq = run(http, url, token, o.queries, 1).await;
    let (api1, nx1, io1) = (cpu(pids.api, pids.ticks), cpu(pids.nx, pids.ticks), bytes_from(pids.api, pids.nx_port));
    let (d1, n1) = docs_read(http, &metrics).await;
    if let (Some(p), Some(out)) = (perf, out) {
        p.stop()?;
        println!("    perf samples of the api and the stand-in over this run (self time):\n{}", Perf::report(out, 40));
    }
    let conc = run(http, url, token, o.queries, o.concurrency).await;
    let n = o.queries as f64;
    Ok(Measured {
        docs: if n1 > n0 { (d1 - d0) / (n1 - n0) } else { 0.0 },
        api_cpu_ms: (api1 - api0) * 1e3 / n,
        nx_cpu_ms: (nx1 - nx0) * 1e3 / n,
        read_bytes: io1.saturating_sub(io0) as f64 / n,
        seq,
        conc,
    })
}

// ---------------------------------------------------------------------------------------------
// wrk.

struct Wrk {
    p50: f64,
    p90: f64,
    p99: f64,
    rps: f64,
    requests: u64,
    trouble: Vec<String>,
}

fn wrk_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => return None,
    })
}

fn wrk(url: &str, token: &str, connections: usize, seconds: u64) -> anyhow::Result<Wrk> {
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--timeout", "30s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .context("running wrk (`make deps-bench` installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pct = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).and_then(wrk_ms))
            .ok_or_else(|| anyhow::anyhow!("wrk printed no {label} line:\n{text}"))
    };
    let rps = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()));
    let requests = text.lines().find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()));
    let trouble = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|l| l.trim().to_string())
        .collect();
    Ok(Wrk {
        p50: pct("50%")?,
        p90: pct("90%")?,
        p99: pct("99%")?,
        rps: rps.unwrap_or(f64::NAN),
        requests: requests.unwrap_or(0),
        trouble,
    })
}

// ---------------------------------------------------------------------------------------------
// The stack and its data.

async fn upload(api: &Api, token: &str, site: &str, zip: Vec<u8>) -> anyhow::Result<String> {
    let res = api
        .http
        .post(format!("{}/api/sites/{site}/imports", api.api))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .timeout(Duration::from_secs(300))
        .body(zip)
        .send()
        .await
        .context("upload")?;
    let (status, body) = Api::json(res).await;
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("upload: {status} {body}");
    }
    body["id"].as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("upload: no id in {body}"))
}

/// Polls the site's imports until `import` has left `running`.
async fn settled(api: &Api, token: &str, site: &str, import: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let (status, list) = api.get(&format!("/api/sites/{site}/imports"), Some(token)).await;
        if status != reqwest::StatusCode::OK {
            bail!("imports list: {status} {list}");
        }
        let row = list.as_array().and_then(|l| l.iter().find(|r| r["id"] == import)).cloned();
        if let Some(row) = row.filter(|r| r["state"] != "running") {
            return Ok(row);
        }
        if Instant::now() > deadline {
            bail!("the import did not finish within an hour");
        }
        // The poll interval: an import of a year of busy days takes minutes.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Posts today's live batches to ingest for the site of `key`, 16 sessions at a time; each
/// session's batches in order.
async fn send_today(api: &Api, key: &str, domain: &str, batches: &[LiveBatch]) -> anyhow::Result<()> {
    let mut sessions: BTreeMap<&str, Vec<&LiveBatch>> = BTreeMap::new();
    for b in batches {
        sessions.entry(b.session.as_str()).or_default().push(b);
    }
    let failures = AtomicUsize::new(0);
    futures::stream::iter(sessions.into_values())
        .for_each_concurrent(16, |session| async {
            for b in session {
                let body = json!({"key": key, "batch_id": format!("{}{}", b.session, b.offset_ms),
                                  "session_id": b.session, "events": events_on(b, domain)});
                let mut accepted = false;
                for _ in 0..5 {
                    let res = api
                        .http
                        .post(format!("{}/api/events/batch", api.ingest))
                        .header("content-type", "text/plain;charset=UTF-8")
                        .header("user-agent", AGENTS[b.agent].0)
                        .header("origin", format!("https://{domain}"))
                        .header("x-forwarded-for", &b.address)
                        .body(body.to_string())
                        .send()
                        .await;
                    if res.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED) {
                        accepted = true;
                        break;
                    }
                }
                if !accepted {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    match failures.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => bail!("{n} live batches were not accepted"),
    }
}

fn summary_pageviews(stats: &Value) -> i64 {
    stats["summary"]["pageviews"].as_i64().unwrap_or(-1)
}

/// The sizes of one imported day's documents as stored: the whole document, and its head,
/// tail and fold filter where it has them.
async fn day_sizes(db: &mongodb::Database, site: &str, import: &str, day: NaiveDate) -> Vec<(String, [usize; 4])> {
    let rollups = db.collection::<RawDocumentBuf>(c::ROLLUPS);
    let mut out = Vec::new();
    for id in shared::imports::lens_doc_ids(site, import, day, day) {
        let Ok(Some(d)) = rollups.find_one(doc! {"_id": &id}).await else { continue };
        let field = |name: &str| d.get_binary(name).ok().map_or(0, |b| b.bytes.len());
        let part = id.rsplit('|').next().unwrap_or_default().to_string();
        let part = if part.len() == 10 && part.starts_with("20") { "site-day".to_string() } else { part };
        out.push((part, [d.as_bytes().len(), field("top"), field("tail"), field("folded")]));
    }
    out
}

fn kib(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The run, step by step.

/// The stack, the account and its two sites.
struct Bench {
    o: Opts,
    stack: Stack,
    api: Api,
    /// The client of the timed requests (the harness's has a 10 s timeout).
    http: reqwest::Client,
    token: String,
    tz: Tz,
    today: NaiveDate,
    history: String,
    history_key: String,
    baseline: String,
    baseline_key: String,
}

impl Bench {
    fn stats_url(&self, site: &str, query: &str) -> String {
        format!("{}/api/stats/{site}?{query}", self.stack.url(Proc::Api))
    }
}

/// A stats view measured: its query, and the days the two sites' pageviews must differ by.
struct View {
    name: &'static str,
    query: String,
    from: NaiveDate,
    page: Option<&'static str>,
}

fn views(today: NaiveDate) -> Vec<View> {
    let year_from = today - Days::days(YEAR_DAYS - 1);
    let year = format!("from={year_from}&to={today}");
    vec![
        View { name: "30d", query: "timeframe=30d".into(), from: today - Days::days(29), page: None },
        View { name: "90d", query: "timeframe=90d".into(), from: today - Days::days(89), page: None },
        View { name: "12 months", query: year.clone(), from: year_from, page: None },
        View {
            name: "12 months, page",
            query: format!("{year}&page={}", PAGE.replace('/', "%2F")),
            from: year_from,
            page: Some(PAGE),
        },
    ]
}

/// The generated history, oldest day first.
fn history_days(b: &Bench, rng: &mut Rng) -> Vec<ImportedDay> {
    let last = b.today - Days::days(LIVE_DAYS);
    let first = last - Days::days(b.o.days - 1);
    let names = Names::new();
    first.iter_days().take_while(|d| *d <= last).enumerate().map(|(n, d)| imported_day(d, n, &b.o, &names, rng)).collect()
}

fn span(days: &[ImportedDay]) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    match (days.first().and_then(ImportedDay::day), days.last().and_then(ImportedDay::day)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => bail!("no days, or a day without a date"),
    }
}

/// Uploads the history through the import route and waits until it is counted: as one zip,
/// or, when the api refuses that, as zips of [`IMPORT_PART_DAYS`] days. Returns the imports.
async fn import_history(b: &Bench, days: &[ImportedDay]) -> anyhow::Result<Vec<String>> {
    let t = Instant::now();
    let (first, last) = span(days)?;
    let zip = shared::imports::write_zip(days, DOMAIN, first, last).map_err(|e| anyhow::anyhow!("{e}"))?;
    let unzipped: u64 = {
        let mut a = zip::ZipArchive::new(Cursor::new(&zip))?;
        (0..a.len()).map(|i| a.by_index(i).map_or(0, |f| f.size())).sum()
    };
    let rows = |f: &dyn Fn(&ImportedDay) -> usize| days.iter().map(f).sum::<usize>();
    println!(
        "==> export of {} days ({first} to {last}): {} page rows, {} named rows, {} event rows; zip {} ({} unzipped), \
         built in {:.1} s",
        days.len(),
        rows(&|d| d.pages.len()),
        rows(&|d| d.named.len()),
        rows(&|d| d.events.len()),
        kib(zip.len() as f64),
        kib(unzipped as f64),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let parsed = shared::imports::parse_zip(&zip).map_err(|e| anyhow::anyhow!("the zip does not parse: {e}"))?;
    println!(
        "    parse_zip of it here (what the api does first): {:.1} s, {} days",
        t.elapsed().as_secs_f64(),
        parsed.len()
    );
    drop(parsed);
    let t = Instant::now();
    let mut imports = Vec::new();
    match upload(&b.api, &b.token, &b.history, zip).await {
        Ok(id) => {
            println!("==> one import of {} days: 202 after {:.1} s", days.len(), t.elapsed().as_secs_f64());
            imports.push(id);
        }
        Err(e) => {
            let (_, list) = b.api.get(&format!("/api/sites/{}/imports", b.history), Some(&b.token)).await;
            println!(
                "!! the zip of {} days as one import: {e} after {:.1} s (the api's 10 s request timeout); listed: {list}",
                days.len(),
                t.elapsed().as_secs_f64()
            );
            match list.as_array().and_then(|l| l.first()).and_then(|r| r["id"].as_str()) {
                Some(id) => imports.push(id.to_string()),
                None => {
                    for part in days.chunks(IMPORT_PART_DAYS) {
                        let (from, to) = span(part)?;
                        let zip = shared::imports::write_zip(part, DOMAIN, from, to).map_err(|e| anyhow::anyhow!("{e}"))?;
                        let t = Instant::now();
                        imports.push(upload(&b.api, &b.token, &b.history, zip).await?);
                        let took = t.elapsed().as_secs_f64();
                        println!("==> import of {from} to {to} ({} days): 202 after {took:.1} s", part.len());
                    }
                }
            }
        }
    }
    let accepted = t.elapsed();
    for id in &imports {
        let row = settled(&b.api, &b.token, &b.history, id).await?;
        if row["state"] != "done" {
            bail!("import {id} did not finish: {row}");
        }
    }
    let done = (t.elapsed() - accepted).as_secs_f64();
    let left = db(b).await?.collection::<RawDocumentBuf>(c::IMPORT_CHUNKS).count_documents(doc! {}).await?;
    if left > 0 {
        println!("!! {left} import chunks are left in {} with every import done", c::IMPORT_CHUNKS);
    }
    println!(
        "==> {} import(s) of {} days done {done:.1} s after the last 202 (load {})",
        imports.len(),
        days.len(),
        loadavg()
    );
    Ok(imports)
}

async fn db(b: &Bench) -> anyhow::Result<mongodb::Database> {
    Ok(mongodb::Client::with_uri_str(&b.stack.mongo_uri).await?.database(&b.stack.mongo_db))
}

/// The same live batches for both sites on the last [`LIVE_DAYS`] days: today's through
/// ingest, the days before written with the aggregator's flush code at their own times.
async fn feed_live(b: &Bench, rng: &mut Rng) -> anyhow::Result<()> {
    let t = Instant::now();
    let writer = PastWriter::new(&b.stack).await;
    let mut total = 0;
    for ago in (0..LIVE_DAYS).rev() {
        let batches = live_day(b.o.live_batches, rng, ago);
        total += batches.len();
        if ago == 0 {
            send_today(&b.api, &b.history_key, DOMAIN, &batches).await?;
            send_today(&b.api, &b.baseline_key, BASELINE_DOMAIN, &batches).await?;
            continue;
        }
        let day = b.today - Days::days(ago);
        let first = day.and_hms_opt(0, 30, 0).ok_or_else(|| anyhow::anyhow!("00:30"))?;
        let start =
            b.tz.from_local_datetime(&first).earliest().ok_or_else(|| anyhow::anyhow!("{day} 00:30"))?.timestamp_millis();
        for (site, domain) in [(&b.history, DOMAIN), (&b.baseline, BASELINE_DOMAIN)] {
            let mut msgs = batches
                .iter()
                .enumerate()
                .map(|(n, batch)| message(batch, site, domain, start + batch.offset_ms, n + ago as usize * 1_000_000))
                .collect::<anyhow::Result<Vec<_>>>()?;
            msgs.sort_by_key(|m| m.received_at);
            for chunk in msgs.chunks(500) {
                writer.write(chunk).await;
            }
        }
    }
    b.stack.wait_drained().await;
    println!("==> live: {total} batches a site over {LIVE_DAYS} days in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Each view of the history site must show the baseline's pageviews plus exactly the imported
/// ones in its range (site-wide, or of the page).
async fn check_views(b: &Bench, views: &[View], days: &[ImportedDay]) -> anyhow::Result<()> {
    for v in views {
        let want: i64 = days
            .iter()
            .filter(|d| d.day().is_some_and(|day| v.from <= day && day <= b.today))
            .map(|d| match v.page {
                None => d.pageviews as i64,
                Some(p) => d.pages.iter().filter(|r| r.path == p).map(|r| r.pageviews as i64).sum(),
            })
            .sum();
        let h = b.api.stats(&b.token, &b.history, &v.query).await;
        let base = b.api.stats(&b.token, &b.baseline, &v.query).await;
        let got = summary_pageviews(&h) - summary_pageviews(&base);
        if got != want {
            bail!("MISMATCH {}: history - baseline = {got} pageviews, the import holds {want} in the range", v.name);
        }
        println!(
            "==> {}: history {} pageviews = baseline {} + {want} imported; {} top pages",
            v.name,
            summary_pageviews(&h),
            summary_pageviews(&base),
            h["top_pages"].as_array().map_or(0, Vec::len)
        );
    }
    Ok(())
}

/// Where the bytes are: one imported day's documents as stored (the median day).
async fn print_day_sizes(b: &Bench, imports: &[String], days: &[ImportedDay]) -> anyhow::Result<()> {
    let Some(mid) = days.get(days.len() / 2).and_then(ImportedDay::day) else { return Ok(()) };
    let db = db(b).await?;
    let mut sizes = Vec::new();
    for id in imports {
        sizes.extend(day_sizes(&db, &b.history, id, mid).await);
    }
    let whole: usize = sizes.iter().map(|(_, s)| s[0]).sum();
    println!("==> one imported day ({mid}) as stored: {} documents, {} in all", sizes.len(), kib(whole as f64));
    println!("| document | bytes | head | tail | fold filter |\n|---|---|---|---|---|");
    for (part, s) in &sizes {
        println!("| {part} | {} | {} | {} | {} |", s[0], s[1], s[2], s[3]);
    }
    Ok(())
}

/// Latency, documents, bytes and CPU of each view of both sites, and of `/healthz`.
async fn latency(b: &Bench, views: &[View]) -> anyhow::Result<()> {
    let o = &b.o;
    let pids = Pids {
        api: b.stack.pid(Proc::Api).ok_or_else(|| anyhow::anyhow!("no api"))?,
        nx: b.stack.pid(Proc::Mongo).ok_or_else(|| anyhow::anyhow!("no MongoDB-wire server started here"))?,
        nx_port: b.stack.mongo_uri.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0),
        ticks: clock_ticks(),
    };
    println!(
        "==> {} requests per view and site after {} of warm-up, one at a time then {} at a time (load {})",
        o.queries,
        o.warmup,
        o.concurrency,
        loadavg()
    );
    let mut results = Vec::new();
    for v in views {
        let perf = (o.perf && v.name == "12 months").then_some(o.perf_out.as_str());
        let h = measure(&b.http, &b.stack, &pids, &b.stats_url(&b.history, &v.query), &b.token, o, perf).await?;
        let base = measure(&b.http, &b.stack, &pids, &b.stats_url(&b.baseline, &v.query), &b.token, o, None).await?;
        println!(
            "    {}: history {} ms, baseline {} ms (p50 / p99 / max, one at a time); load {}",
            v.name,
            h.seq.cell(),
            base.seq.cell(),
            loadavg()
        );
        results.push((v.name, h, base));
    }
    let health_url = format!("{}/healthz", b.stack.url(Proc::Api));
    let health = measure(&b.http, &b.stack, &pids, &health_url, &b.token, o, None).await?;

    println!(
        "\n| view | history: p50 / p99 / max, 1 at a time (ms) | baseline: same | p99 ratio | history: p50 / p99 / max, \
         {c} at a time | baseline: same | p99 ratio |",
        c = o.concurrency
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, h, base) in &results {
        println!(
            "| {name} | {} | {} | {:.1} | {} | {} | {:.1} |",
            h.seq.cell(),
            base.seq.cell(),
            h.seq.pct(0.99) / base.seq.pct(0.99),
            h.conc.cell(),
            base.conc.cell(),
            h.conc.pct(0.99) / base.conc.pct(0.99)
        );
    }
    println!("| `/healthz` (floor) | {} | | | {} | | |", health.seq.cell(), health.conc.cell());
    println!(
        "\n| view, per request (1 at a time) | documents read: history / baseline | bytes from the stand-in | api CPU | \
         stand-in CPU | mean wall | answer |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, h, base) in &results {
        println!(
            "| {name} | {:.0} / {:.0} | {} / {} | {} / {} ms | {} / {} ms | {} / {} ms | {} |",
            h.docs,
            base.docs,
            kib(h.read_bytes),
            kib(base.read_bytes),
            ms(h.api_cpu_ms),
            ms(base.api_cpu_ms),
            ms(h.nx_cpu_ms),
            ms(base.nx_cpu_ms),
            ms(h.seq.mean()),
            ms(base.seq.mean()),
            kib(h.seq.body_bytes as f64 / h.seq.ms.len().max(1) as f64)
        );
    }
    for (name, h, base) in &results {
        for (who, m) in [("history", h), ("baseline", base)] {
            if let Some(e) = m.seq.first_failure.as_ref().or(m.conc.first_failure.as_ref()) {
                println!("!! {name}, {who}: {} failed, first: {e}", m.seq.failed + m.conc.failed);
            }
        }
    }
    Ok(())
}

/// A fresh api process, answering: its pid and idle `VmRSS` (KiB).
async fn fresh_api(b: &mut Bench) -> anyhow::Result<(u32, u64)> {
    b.stack.terminate(Proc::Api);
    b.stack.start_proc(Proc::Api);
    b.stack.wait_ready(Proc::Api).await;
    let pid = b.stack.pid(Proc::Api).ok_or_else(|| anyhow::anyhow!("no api"))?;
    let _ = run(&b.http, &format!("{}/healthz", b.stack.url(Proc::Api)), &b.token, 5, 1).await;
    Ok((pid, status_kib(pid, "VmRSS")))
}

/// The api's memory: for each phase a fresh process (what an earlier phase left allocated
/// would hide this one's need), idle, then one view `n` requests at a time: each range one
/// at a time, then the 12-month views several at a time.
async fn memory(b: &mut Bench, views: &[View], days: &[ImportedDay]) -> anyhow::Result<()> {
    let c = b.o.concurrency;
    println!(
        "\n==> memory of the api, a fresh process per phase, {} requests a phase (load {})",
        b.o.mem_requests,
        loadavg()
    );
    println!(
        "| view | at once | imported days in range | idle RSS | peak RSS | peak - idle | per request in flight | RSS after | \
         p50 / p99 / max (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let year = &views[2];
    let phases: Vec<(&View, usize)> =
        vec![(&views[0], 1), (&views[1], 1), (year, 1), (&views[3], 1), (year, c), (year, c * 2), (&views[3], c)];
    let mut single = Vec::new();
    let mut grown_at = BTreeMap::new();
    for (v, at_once) in phases {
        let (pid, idle) = fresh_api(b).await?;
        let imported = days.iter().filter(|d| d.day().is_some_and(|day| v.from <= day && day <= b.today)).count();
        let reset = reset_peak(pid);
        let sampler = RssSampler::start(pid);
        let r = run(&b.http, &b.stats_url(&b.history, &v.query), &b.token, b.o.mem_requests.max(at_once), at_once).await;
        let sampled = sampler.stop();
        let peak = if reset { sampled.max(status_kib(pid, "VmHWM")) } else { sampled };
        let grown = peak.saturating_sub(idle) as f64 / 1024.0;
        if v.page.is_none() {
            if at_once == 1 {
                single.push((imported, grown));
            }
            grown_at.insert(at_once, grown);
        }
        println!(
            "| {} | {at_once} | {imported} | {} MiB | {} MiB | {grown:.0} MiB | {:.1} MiB | {} MiB | {} |",
            v.name,
            idle / 1024,
            peak / 1024,
            grown / at_once as f64,
            status_kib(pid, "VmRSS") / 1024,
            r.cell()
        );
    }
    if let (Some(&(d0, m0)), Some(&(d1, m1))) = (single.first(), single.last())
        && d1 > d0
    {
        println!(
            "    one request at a time: {:.2} MiB of peak RSS per imported day in range ({d0} to {d1} days)",
            (m1 - m0) / (d1 - d0) as f64
        );
    }
    if let (Some(lo), Some(hi)) = (grown_at.get(&c), grown_at.get(&(c * 2))) {
        println!("    each 12-month request in flight past {c} adds {:.1} MiB of peak RSS", (hi - lo) / c as f64);
    }
    Ok(())
}

/// wrk against both sites' 12-month URL, 1 and `BENCH_CONCURRENCY` connections.
fn outside_client(b: &Bench, year: &View) -> anyhow::Result<()> {
    let o = &b.o;
    println!("\n==> wrk -t1 -cN -d{}s --latency, 12 months (load {})", o.wrk_duration, loadavg());
    println!("| site | connections | requests | req/s | p50 | p90 | p99 (ms) |\n|---|---|---|---|---|---|---|");
    let mut p99 = BTreeMap::new();
    for connections in [1, o.concurrency] {
        for (who, site) in [("history", &b.history), ("baseline", &b.baseline)] {
            let w = wrk(&b.stats_url(site, &year.query), &b.token, connections, o.wrk_duration)?;
            println!(
                "| {who} | {connections} | {} | {:.1} | {} | {} | {} |{}",
                w.requests,
                w.rps,
                ms(w.p50),
                ms(w.p90),
                ms(w.p99),
                if w.trouble.is_empty() { String::new() } else { format!(" {}", w.trouble.join("; ")) }
            );
            p99.insert((connections, who), w.p99);
        }
    }
    for connections in [1, o.concurrency] {
        let ratio = p99[&(connections, "history")] / p99[&(connections, "baseline")];
        println!("    wrk p99 ratio at {connections} connection(s): {ratio:.1}");
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("bench_history: stats latency and api memory with 400 days of imported history (see the file's header)");
        return Ok(());
    }
    let o = Opts::from_env()?;
    let tz: Tz = TZ_NAME.parse().map_err(|e| anyhow::anyhow!("{TZ_NAME}: {e}"))?;
    println!(
        "bench_history: {} cores, load {}; {} days imported ending {LIVE_DAYS} days ago, {} pages a day; services from {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        o.days,
        o.pages,
        std::env::var("CP_BIN_DIR").unwrap_or_else(|_| "target/debug".into()),
    );
    let stack = Stack::start_with(&[
        ("CP_TRUSTED_PROXIES", "127.0.0.1"),
        ("CP_RATE_LIMIT_KEY_PER_SEC", "1000000"),
        ("CP_RATE_LIMIT_KEY_BURST", "1000000"),
        ("CP_STREAM_MAX_MSGS_PER_SITE", "1000000000"),
        // Imported days are kept as long as an import may reach back (1,098 days).
        ("CP_ROLLUP_RETENTION_DAYS", "1100"),
        // No query-shape log: it writes a line per command, which the measured api must not pay.
        (shared::command_log::ENV, ""),
    ])
    .await;
    let api = Api::new(&stack);
    let token = api.register("history-bench@example.com").await;
    let (history, history_key) = api.create_site(&token, DOMAIN, TZ_NAME).await;
    let (baseline, baseline_key) = api.create_site(&token, BASELINE_DOMAIN, TZ_NAME).await;
    let mut b = Bench {
        http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?,
        today: Utc::now().with_timezone(&tz).date_naive(),
        o,
        stack,
        api,
        token,
        tz,
        history,
        history_key,
        baseline,
        baseline_key,
    };
    let mut rng = Rng(b.o.seed);
    let days = history_days(&b, &mut rng);
    let imports = import_history(&b, &days).await?;
    feed_live(&b, &mut rng).await?;
    let views = views(b.today);
    if let Err(e) = check_views(&b, &views, &days).await {
        println!("{e}");
        std::process::exit(1);
    }
    print_day_sizes(&b, &imports, &days).await?;
    latency(&b, &views).await?;
    memory(&mut b, &views, &days).await?;
    if b.o.wrk_duration > 0 {
        outside_client(&b, &views[2])?;
    }
    println!("\nbench_history: done (load {})", loadavg());
    Ok(())
}
