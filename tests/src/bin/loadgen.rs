//! Load generator: realistic tracker batches against ingest, and what an operator wants to know.
//!
//! ```text
//! loadgen --api URL --ingest URL [--concurrency 64] [--duration 10] [--sites 4]
//!         [--baseline URL] [--probes 50] [--stats-queries 200] [--start-aggregator CMD]
//!         [--drain-wait 600]   # 0: report the burst only, leave the backlog (cluster bench)
//! loadgen --serve-baseline ADDR      # the bare axum handler answering 202, for comparison
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
    drain_wait: Duration,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let argv: Vec<String> = std::env::args().collect();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut it = argv.get(1..).unwrap_or_default().iter();
    while let Some(k) = it.next() {
        const KNOWN: [&str; 11] = [
            "api", "ingest", "concurrency", "duration", "sites", "baseline", "probes", "stats-queries", "start-aggregator", "serve-baseline",
            "drain-wait",
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
    let num = |k: &str, d: u64| -> anyhow::Result<u64> { map.get(k).map_or(Ok(d), |v| v.parse().with_context(|| format!("--{k}"))) };
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
        drain_wait: Duration::from_secs(num("drain-wait", 600)?),
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
const REFERRERS: [&str; 5] = ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x", "https://example.org/post"];
const BUTTONS: [(&str, &str); 4] = [("button#cta", "Start free trial"), ("a.nav-pricing", "Pricing"), ("button.plan-pro", "Choose Pro"), ("a#docs", "Read the docs")];

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

async fn run_load(http: &reqwest::Client, ingest: &str, keys: &[String], concurrency: usize, duration: Duration) -> RunResult {
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, url, keys, seq) = (http.clone(), format!("{ingest}/api/events/batch"), keys.to_vec(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1) * 0x2545_F491_4F6C_DD1D);
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut pageviews = vec![0u64; keys.len()];
            while Instant::now() < deadline {
                let site = rng.below(keys.len() as u64) as usize;
                let (body, pv) = make_batch(&mut rng, &keys[site], seq.fetch_add(1, Ordering::Relaxed));
                // Visitors from many addresses (IPv6 documentation prefix), as a busy page sees.
                let ip = format!("2001:db8::{:x}:{:x}", rng.below(0xffff), rng.below(0xffff));
                let t0 = Instant::now();
                let res = http.post(&url).header("content-type", "text/plain").header("x-forwarded-for", ip).body(body).send().await;
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
    let mut result = RunResult { accepted: 0, elapsed: Duration::ZERO, latencies_us: Vec::new(), statuses: BTreeMap::new(), pageviews_per_site: vec![0; keys.len()] };
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

async fn api_json(http: &reqwest::Client, method: reqwest::Method, url: String, token: Option<&str>, body: Option<Value>) -> anyhow::Result<Value> {
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

fn main() -> anyhow::Result<()> {
    // `--serve-baseline` runs its own server runtime; everything else runs here.
    let Some(args) = parse_args()? else { return Ok(()) };
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(drive(args))
}

async fn drive(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(10)).build()?;

    // A fresh account and sites.
    let email = format!("loadgen-{}@loadtest.example", std::process::id() as u64 * 1000 + Instant::now().elapsed().subsec_nanos() as u64 % 1000);
    let reg = api_json(&http, reqwest::Method::POST, format!("{}/api/auth/register", args.api), None, Some(json!({"email": email, "password": "loadgen-password"}))).await?;
    let token = reg["token"].as_str().context("token")?.to_string();
    let mut sites = Vec::new();
    for i in 0..args.sites {
        let s = api_json(&http, reqwest::Method::POST, format!("{}/api/sites", args.api), Some(&token), Some(json!({"name": format!("Load {i}"), "domain": "loadtest.example"}))).await?;
        sites.push((s["id"].as_str().context("id")?.to_string(), s["api_key"].as_str().context("key")?.to_string()));
    }
    let keys: Vec<String> = sites.iter().map(|(_, k)| k.clone()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await; // let ingest see the new keys

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
        Some(cmd) => Some(std::process::Command::new("bash").arg("-c").arg(format!("exec {cmd}")).spawn().context("starting the aggregator")?),
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
            println!("  backlog drained: all accepted batches in stats {:.0} ms after the last 202", last_202.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if Instant::now() > deadline {
            println!("  backlog NOT drained within {:?}", args.drain_wait);
            break;
        }
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
    println!("freshness (202 -> visible in stats, {} probes) ms: p50 {:.0}  p99 {:.0}  max {:.0}", fresh.len(), pct(&fresh, 0.5), pct(&fresh, 0.99), pct(&fresh, 1.0));

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
