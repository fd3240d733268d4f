//! Load generator: realistic tracker batches against ingest, and what an operator wants to know.
//!
//! ```text
//! loadgen --api URL --ingest URL [--concurrency 64] [--duration 10] [--sites 4]
//!         [--baseline URL] [--probes 50] [--stats-queries 200] [--start-aggregator CMD]
//!         [--drain-wait 600]   # 0: report the burst only, leave the backlog (cluster bench)
//! loadgen --serve-baseline ADDR      # the bare axum handler answering 202, for comparison
//! loadgen --api URL --ingest URL --distinct-keys 20000 --start-aggregator CMD
//!         --aggregator-metrics URL      # rollup cost: 10 keys against N distinct keys a day
//! loadgen --api URL --ingest URL --tenancy 1000 [--batches-per-site 5] [--busy-batches B]
//!         [--batch-size small|1k] [--sites-per-account 100] [--segments K] --start-aggregator CMD
//!         --aggregator-metrics URL      # many sites against one busy site (tenancy.rs)
//! ```
//! Reports accepted batches/s, latency percentiles, refusals by status, freshness (time from a
//! 202 until the api's stats show the batch) and the latency of a 90-day stats query.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

// Beside this file rather than in `src/bin/`, where cargo would take it for a binary of its own.
#[path = "loadgen/tenancy.rs"]
mod tenancy;

struct Args {
    api: String,
    ingest: String,
    concurrency: usize,
    duration: Duration,
    sites: usize,
    baseline: Option<String>,
    probes: usize,
    stats_queries: usize,
    start_aggregator: Option<String>,
    distinct_keys: Option<u64>,
    aggregator_metrics: Option<String>,
    drain_wait: Duration,
    tenancy: Option<u64>,
    batches_per_site: u64,
    busy_batches: Option<u64>,
    batch_size: String,
    sites_per_account: u64,
    /// Segments created on each site of a tenancy run, each matching every session.
    segments: u64,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let argv: Vec<String> = std::env::args().collect();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut it = argv.get(1..).unwrap_or_default().iter();
    while let Some(k) = it.next() {
        const KNOWN: [&str; 19] = [
            "api",
            "ingest",
            "concurrency",
            "duration",
            "sites",
            "baseline",
            "probes",
            "stats-queries",
            "start-aggregator",
            "serve-baseline",
            "distinct-keys",
            "aggregator-metrics",
            "drain-wait",
            "tenancy",
            "batches-per-site",
            "busy-batches",
            "batch-size",
            "sites-per-account",
            "segments",
        ];
        let Some(name) = k.strip_prefix("--").filter(|n| KNOWN.contains(n)) else {
            bail!("unknown argument {k:?}; options: --{}", KNOWN.join(", --"))
        };
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        map.insert(name.to_string(), v.clone());
    }
    if let Some(addr) = map.get("serve-baseline") {
        serve_baseline(addr)?;
        return Ok(None);
    }
    let num = |k: &str, d: u64| -> anyhow::Result<u64> {
        map.get(k).map_or(Ok(d), |v| v.parse().with_context(|| format!("--{k}")))
    };
    Ok(Some(Args {
        api: map.get("api").cloned().unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        ingest: map.get("ingest").cloned().unwrap_or_else(|| "http://127.0.0.1:8081".into()),
        concurrency: num("concurrency", 64)? as usize,
        duration: Duration::from_secs(num("duration", 10)?),
        sites: num("sites", 4)?.max(1) as usize,
        baseline: map.get("baseline").cloned(),
        probes: num("probes", 50)? as usize,
        stats_queries: num("stats-queries", 200)? as usize,
        start_aggregator: map.get("start-aggregator").cloned(),
        distinct_keys: map.get("distinct-keys").map(|v| v.parse()).transpose().context("--distinct-keys")?,
        aggregator_metrics: map.get("aggregator-metrics").cloned(),
        drain_wait: Duration::from_secs(num("drain-wait", 600)?),
        tenancy: map.get("tenancy").map(|v| v.parse()).transpose().context("--tenancy")?,
        batches_per_site: num("batches-per-site", 5)?.max(1),
        busy_batches: map.get("busy-batches").map(|v| v.parse()).transpose().context("--busy-batches")?,
        batch_size: map.get("batch-size").cloned().unwrap_or_else(|| "small".into()),
        sites_per_account: num("sites-per-account", 100)?.max(1),
        segments: num("segments", 0)?.min(10),
    }))
}

/// The bare handler: reads the body and answers 202, nothing else.
fn serve_baseline(addr: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/api/events/batch",
            axum::routing::post(|body: axum::body::Bytes| async move {
                (axum::http::StatusCode::ACCEPTED, format!("{{\"accepted\":{}}}", body.len().min(1)))
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// A cheap pseudo-random sequence (xorshift), so generating load costs little CPU.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PAGES: [&str; 6] = ["/", "/pricing", "/features", "/blog/launch", "/signup", "/docs/start"];
const REFERRERS: [&str; 5] =
    ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x", "https://example.org/post"];
const BUTTONS: [(&str, &str); 4] = [
    ("button#cta", "Start free trial"),
    ("a.nav-pricing", "Pricing"),
    ("button.plan-pro", "Choose Pro"),
    ("a#docs", "Read the docs"),
];

/// One realistic batch: a pageview (sometimes a session start), scroll, clicks, time.
/// Returns the body and how many pageviews it holds.
fn make_batch(rng: &mut Rng, key: &str, seq: u64) -> (String, u64) {
    let page = PAGES[rng.below(PAGES.len() as u64) as usize];
    let url = format!("https://loadtest.example{page}");
    let page_id = format!("p{:x}{seq:x}", rng.next());
    let new_session = rng.below(3) == 0;
    let mut events = vec![json!({"type": "pageview", "ts": 1_764_000_000_000_i64, "page_id": page_id, "url": url,
        "referrer": REFERRERS[rng.below(REFERRERS.len() as u64) as usize], "title": "Load test", "new_session": new_session})];
    let depth = 10 + rng.below(91) as u8;
    events.push(json!({"type": "scroll", "ts": 1, "page_id": page_id, "url": url, "depth": depth, "prev": 0}));
    for _ in 0..rng.below(4) {
        let (sel, text) = BUTTONS[rng.below(BUTTONS.len() as u64) as usize];
        events.push(json!({"type": "click", "ts": 2, "page_id": page_id, "url": url, "selector": sel, "text": text}));
    }
    events.push(json!({"type": "time", "ts": 3, "page_id": page_id, "url": url, "seconds": 1 + rng.below(60)}));
    let body = json!({"key": key, "batch_id": format!("lg{seq:x}{:x}", rng.next()), "session_id": format!("s{:x}", rng.below(5000) + 0x1000_0000), "events": events});
    (body.to_string(), 1)
}

struct RunResult {
    accepted: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    pageviews_per_site: Vec<u64>,
}

async fn run_load(
    http: &reqwest::Client,
    ingest: &str,
    keys: &[String],
    concurrency: usize,
    duration: Duration,
) -> RunResult {
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, url, keys, seq) = (http.clone(), format!("{ingest}/api/events/batch"), keys.to_vec(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((worker as u64 + 1) * 0x2545_F491_4F6C_DD1D));
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut pageviews = vec![0u64; keys.len()];
            while Instant::now() < deadline {
                let site = rng.below(keys.len() as u64) as usize;
                let (body, pv) = make_batch(&mut rng, &keys[site], seq.fetch_add(1, Ordering::Relaxed));
                // Visitors from many addresses (IPv6 documentation prefix), as a busy page sees,
                // each in a /64 of its own: ingest limits IPv6 clients per /64.
                let ip = format!("2001:db8:{:x}:{:x}::1", rng.below(0xffff), rng.below(0xffff));
                let t0 = Instant::now();
                let res = http
                    .post(&url)
                    .header("content-type", "text/plain")
                    .header("x-forwarded-for", ip)
                    .body(body)
                    .send()
                    .await;
                let status = match res {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                lat.push(t0.elapsed().as_micros() as u64);
                *statuses.entry(status).or_default() += 1;
                if status == 202 {
                    pageviews[site] += pv;
                }
            }
            (lat, statuses, pageviews)
        }));
    }
    let mut result = RunResult {
        accepted: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        statuses: BTreeMap::new(),
        pageviews_per_site: vec![0; keys.len()],
    };
    for t in tasks {
        if let Ok((lat, statuses, pvs)) = t.await {
            result.latencies_us.extend(lat);
            for (s, n) in statuses {
                *result.statuses.entry(s).or_default() += n;
            }
            for (i, n) in pvs.into_iter().enumerate() {
                result.pageviews_per_site[i] += n;
            }
        }
    }
    result.elapsed = started.elapsed();
    result.accepted = result.statuses.get(&202).copied().unwrap_or(0);
    result.latencies_us.sort_unstable();
    result
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report(name: &str, r: &RunResult) {
    let rate = r.accepted as f64 / r.elapsed.as_secs_f64();
    println!("{name}: {} requests in {:.1}s, accepted {:.0} batches/s", r.latencies_us.len(), r.elapsed.as_secs_f64(), rate);
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(&r.latencies_us, 0.5),
        pct(&r.latencies_us, 0.9),
        pct(&r.latencies_us, 0.99),
        pct(&r.latencies_us, 1.0)
    );
    let refused: Vec<String> = r.statuses.iter().filter(|(s, _)| **s != 202).map(|(s, n)| format!("{s}: {n}")).collect();
    println!("  refused by status: {}", if refused.is_empty() { "none".to_string() } else { refused.join(", ") });
}

async fn api_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status();
    let v: Value = res.json().await?;
    if !status.is_success() {
        bail!("api answered {status}: {v}");
    }
    Ok(v)
}

async fn pageviews(http: &reqwest::Client, api: &str, token: &str, site: &str) -> u64 {
    api_json(http, reqwest::Method::GET, format!("{api}/api/stats/{site}?timeframe=7d"), Some(token), None)
        .await
        .ok()
        .and_then(|s| s["summary"]["pageviews"].as_u64())
        .unwrap_or(0)
}

/// Waits (at most 30 s) until ingest knows every key of `keys`. The probe is a batch from a
/// foreign origin: ingest checks the origin after the key, so 401 means not yet and 403 live,
/// and neither answer counts anything.
async fn wait_keys_live(http: &reqwest::Client, ingest: &str, keys: &[String]) -> anyhow::Result<()> {
    use cp_tests::batch::{batch, id, pageview};
    let url = format!("{ingest}/api/events/batch");
    let live = cp_tests::wait::poll(Duration::from_secs(30), || async {
        for key in keys {
            let probe = batch(key, "session_probe", vec![pageview(&id("page"), "https://loadtest.example/", "", false)]);
            let res = http.post(&url).header("origin", "https://key-probe.invalid").json(&probe).send().await.ok()?;
            if res.status() != 403 {
                return None;
            }
        }
        Some(())
    })
    .await;
    anyhow::ensure!(live.is_some(), "ingest did not know the new site keys within 30 s");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `--serve-baseline` runs its own server runtime; everything else runs here.
    let Some(args) = parse_args()? else { return Ok(()) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.tenancy.is_some() {
        rt.block_on(tenancy::drive(args))
    } else if args.distinct_keys.is_some() {
        rt.block_on(rollups::drive(args))
    } else {
        rt.block_on(drive(args))
    }
}

async fn drive(args: Args) -> anyhow::Result<()> {
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(10)).build()?;

    // A fresh account and sites.
    let email = format!(
        "loadgen-{}@loadtest.example",
        std::process::id() as u64 * 1000 + Instant::now().elapsed().subsec_nanos() as u64 % 1000
    );
    let reg = api_json(
        &http,
        reqwest::Method::POST,
        format!("{}/api/auth/register", args.api),
        None,
        Some(json!({"email": email, "password": "loadgen-password"})),
    )
    .await?;
    let token = reg["token"].as_str().context("token")?.to_string();
    let mut sites = Vec::new();
    for i in 0..args.sites {
        let s = api_json(
            &http,
            reqwest::Method::POST,
            format!("{}/api/sites", args.api),
            Some(&token),
            Some(json!({"name": format!("Load {i}"), "domain": "loadtest.example"})),
        )
        .await?;
        sites.push((s["id"].as_str().context("id")?.to_string(), s["api_key"].as_str().context("key")?.to_string()));
    }
    let keys: Vec<String> = sites.iter().map(|(_, k)| k.clone()).collect();
    wait_keys_live(&http, &args.ingest, &keys).await?;

    println!("load: {} workers for {:?}, {} sites", args.concurrency, args.duration, args.sites);
    if let Some(base) = &args.baseline {
        let b = run_load(&http, base, &keys, args.concurrency, args.duration).await;
        report("baseline (bare axum 202)", &b);
    }
    let r = run_load(&http, &args.ingest, &keys, args.concurrency, args.duration).await;
    let last_202 = Instant::now();
    report("ingest", &r);

    // The aggregator starts only now, so the figures above are ingest's alone.
    let mut aggregator = match &args.start_aggregator {
        Some(cmd) => Some(
            std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("exec {cmd}"))
                .spawn()
                .context("starting the aggregator")?,
        ),
        None => None,
    };

    if args.drain_wait.is_zero() {
        println!("  backlog left in the stream (--drain-wait 0)");
        return Ok(());
    }
    // Freshness after the burst: until every accepted pageview shows in the stats.
    let deadline = Instant::now() + args.drain_wait;
    loop {
        let mut all = true;
        for (i, (site, _)) in sites.iter().enumerate() {
            if pageviews(&http, &args.api, &token, site).await < r.pageviews_per_site[i] {
                all = false;
                break;
            }
        }
        if all {
            println!(
                "  backlog drained: all accepted batches in stats {:.0} ms after the last 202",
                last_202.elapsed().as_secs_f64() * 1000.0
            );
            break;
        }
        if Instant::now() > deadline {
            println!("  backlog NOT drained within {:?}", args.drain_wait);
            break;
        }
        // The poll interval of this deadline loop (20 ms: the drain time is what it measures).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Freshness at normal load: single batches, each timed from its 202 to its appearance.
    let mut fresh = Vec::new();
    let mut rng = Rng(42);
    let (site, key) = &sites[0];
    for i in 0..args.probes {
        let before = pageviews(&http, &args.api, &token, site).await;
        let (body, _) = make_batch(&mut rng, key, 0xF000_0000 + i as u64);
        let res = http.post(format!("{}/api/events/batch", args.ingest)).body(body).send().await?;
        if res.status() != 202 {
            continue;
        }
        let t0 = Instant::now();
        // Poll every 20 ms: often enough to time it, without hammering the database the
        // aggregator is writing to.
        while pageviews(&http, &args.api, &token, site).await <= before && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fresh.push(t0.elapsed().as_micros() as u64);
    }
    fresh.sort_unstable();
    println!(
        "freshness (202 -> visible in stats, {} probes) ms: p50 {:.0}  p99 {:.0}  max {:.0}",
        fresh.len(),
        pct(&fresh, 0.5),
        pct(&fresh, 0.99),
        pct(&fresh, 1.0)
    );

    // A 90-day stats query, repeated.
    let mut q = Vec::new();
    for _ in 0..args.stats_queries {
        let t0 = Instant::now();
        let res = http.get(format!("{}/api/stats/{}?timeframe=90d", args.api, site)).bearer_auth(&token).send().await?;
        let _ = res.bytes().await?;
        q.push(t0.elapsed().as_micros() as u64);
    }
    q.sort_unstable();
    println!("stats 90d query ({} requests) ms: p50 {:.2}  p99 {:.2}", q.len(), pct(&q, 0.5), pct(&q, 0.99));
    if let Some(child) = aggregator.as_mut() {
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
    Ok(())
}

/// `--distinct-keys N`: what the rollups cost as cardinality grows. Two sites get N batches
/// each (1 pageview + 1 click): one cycling through 10 pages, selectors, referrers and
/// visitors, the other with a page, selector, referrer and visitor of its own per batch.
/// For each, in turn: send with the aggregator stopped, start it, time the drain, and read
/// its cost from its metrics; then time stats queries of both sites for 24h, 7d and 90d.
mod rollups {
    use super::*;

    #[derive(Debug, Default, Clone, Copy)]
    pub(super) struct Counters {
        pub(super) events: f64,
        pub(super) docs_written: f64,
        pub(super) round_trips: f64,
        pub(super) flushes: f64,
    }

    pub(super) async fn counters(http: &reqwest::Client, url: &str) -> Counters {
        let text = match http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        Counters {
            events: value("convertpulse_aggregator_events_total"),
            docs_written: value("convertpulse_aggregator_documents_written_total"),
            round_trips: value("convertpulse_aggregator_mongo_round_trips_total"),
            flushes: value("convertpulse_aggregator_flush_seconds_count"),
        }
    }

    /// CPU seconds a process has used (utime + stime).
    pub(super) fn cpu_seconds(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14 and 15 of stat, counted after the ")" that ends the command name.
        (ticks(11) + ticks(12)) / 100.0
    }

    fn batch(key: &str, n: u64, distinct: bool) -> String {
        let k = if distinct { n } else { n % 10 };
        let page_id = format!("pg{n:08x}");
        let url = format!("https://loadtest.example/page/{k}");
        json!({"key": key, "batch_id": format!("rb{n:08x}{}", if distinct { "d" } else { "f" }), "session_id": format!("rs{n:08x}"),
            "events": [
                {"type": "pageview", "ts": 1, "page_id": page_id, "url": url, "referrer": format!("https://ref{k}.example.org/"), "title": "T", "new_session": true},
                {"type": "click", "ts": 2, "page_id": page_id, "url": url, "selector": format!("a#link-{k}"), "text": format!("Link {k}")}
            ]})
        .to_string()
    }

    async fn send(
        http: &reqwest::Client,
        ingest: &str,
        key: &str,
        total: u64,
        distinct: bool,
        concurrency: usize,
    ) -> anyhow::Result<u64> {
        let next = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (http, url, key, next, ok) =
                (http.clone(), format!("{ingest}/api/events/batch"), key.to_string(), next.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    let v = if distinct { n } else { n % 10 };
                    // The visitor is the client address and User-Agent: one per key, each
                    // address in a /64 of its own (ingest limits IPv6 clients per /64).
                    let ip = format!("2001:db8:{:x}:{:x}::1", v >> 16, v & 0xffff);
                    let ua = format!("Mozilla/5.0 (X11; Linux x86_64) LoadTest/{v}");
                    let res = http
                        .post(&url)
                        .header("x-forwarded-for", ip)
                        .header("user-agent", ua)
                        .body(batch(&key, n, distinct))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 202 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) if n < 3 => eprintln!("batch {n}: {} {}", r.status(), r.text().await.unwrap_or_default()),
                        _ => {}
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        Ok(ok.load(Ordering::Relaxed))
    }

    async fn query_times(
        http: &reqwest::Client,
        api: &str,
        token: &str,
        site: &str,
        timeframe: &str,
        n: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let mut q = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            let res = http.get(format!("{api}/api/stats/{site}?timeframe={timeframe}")).bearer_auth(token).send().await?;
            let status = res.status();
            let _ = res.bytes().await?;
            anyhow::ensure!(status.is_success(), "stats answered {status}");
            q.push(t0.elapsed().as_micros() as u64);
        }
        q.sort_unstable();
        Ok(q)
    }

    pub async fn drive(args: Args) -> anyhow::Result<()> {
        let n = args.distinct_keys.unwrap_or(20_000);
        let start_cmd = args.start_aggregator.clone().context("--distinct-keys needs --start-aggregator")?;
        let metrics_url = args.aggregator_metrics.clone().context("--distinct-keys needs --aggregator-metrics")?;
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(30)).build()?;
        let email = format!("rollups-{}@loadtest.example", std::process::id());
        let reg = api_json(
            &http,
            reqwest::Method::POST,
            format!("{}/api/auth/register", args.api),
            None,
            Some(json!({"email": email, "password": "loadgen-password"})),
        )
        .await?;
        let token = reg["token"].as_str().context("token")?.to_string();
        let mut sites = Vec::new();
        for name in ["few", "distinct"] {
            let s = api_json(
                &http,
                reqwest::Method::POST,
                format!("{}/api/sites", args.api),
                Some(&token),
                Some(json!({"name": name, "domain": "loadtest.example"})),
            )
            .await?;
            sites.push((s["id"].as_str().context("id")?.to_string(), s["api_key"].as_str().context("key")?.to_string()));
        }
        let keys: Vec<String> = sites.iter().map(|(_, k)| k.clone()).collect();
        wait_keys_live(&http, &args.ingest, &keys).await?;
        println!(
            "rollups: {n} batches (1 pageview + 1 click) per site, 10 keys vs {n} distinct pages, selectors, referrers and visitors"
        );
        println!(
            "| keys | drain batches/s | docs written / 1,000 events | round trips / flush | batches / flush | aggregator CPU µs / batch |"
        );
        println!("|---|---|---|---|---|---|");
        for (i, distinct) in [false, true].into_iter().enumerate() {
            let (site, key) = &sites[i];
            let accepted = send(&http, &args.ingest, key, n, distinct, args.concurrency).await?;
            let mut child = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("exec {start_cmd}"))
                .spawn()
                .context("starting the aggregator")?;
            let started = Instant::now();
            // A fresh process: its counters start at zero.
            let before = Counters::default();
            let cpu0 = cpu_seconds(child.id());
            let deadline = Instant::now() + Duration::from_secs(1800);
            while pageviews(&http, &args.api, &token, site).await < accepted {
                anyhow::ensure!(Instant::now() < deadline, "backlog not drained in 30 minutes");
                // The poll interval of this deadline loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let drain = started.elapsed().as_secs_f64();
            let after = counters(&http, &metrics_url).await;
            let cpu = cpu_seconds(child.id()) - cpu0;
            let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
            let events = (after.events - before.events).max(1.0);
            let flushes = (after.flushes - before.flushes).max(1.0);
            println!(
                "| {} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
                if distinct { n.to_string() } else { "10".to_string() },
                accepted as f64 / drain,
                (after.docs_written - before.docs_written) * 1000.0 / events,
                (after.round_trips - before.round_trips) / flushes,
                accepted as f64 / flushes,
                cpu * 1e6 / accepted.max(1) as f64,
            );
        }
        println!();
        println!("| timeframe | 10 keys p50 / p99 ms | {n} keys p50 / p99 ms | ratio of p99 |");
        println!("|---|---|---|---|");
        // The same with a page filter (a page both sites have).
        for tf in ["24h", "7d", "90d", "24h&page=/page/1", "90d&page=/page/1"] {
            let few = query_times(&http, &args.api, &token, &sites[0].0, tf, args.stats_queries).await?;
            let many = query_times(&http, &args.api, &token, &sites[1].0, tf, args.stats_queries).await?;
            println!(
                "| {tf} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} |",
                pct(&few, 0.5),
                pct(&few, 0.99),
                pct(&many, 0.5),
                pct(&many, 0.99),
                pct(&many, 0.99) / pct(&few, 0.99).max(0.001)
            );
        }
        Ok(())
    }
}
