//! `--tenancy N`: what many small sites cost against one busy site, in one run on one stack
//! (issue 18, "Many sites at once"). The same number of batches, of the same shape, goes first
//! to one site, then spread over N sites, so the only thing that differs is how many sites the
//! traffic belongs to.
//!
//! 1. **Busy site**: an account with one site gets B batches (default N × k), sent with the
//!    aggregator stopped.
//! 2. **Drain**: start the aggregator and time it until every accepted batch is counted; read
//!    its cost counters and CPU; check that the site's stats equal what got a 202; stop it.
//! 3. **Alone**: time stats queries (24h, 7d, 90d) of the busy site, the only data there is.
//! 4. **Many sites**: N sites in accounts of at most `--sites-per-account` (a per-account site
//!    limit may exist), each getting k batches (default 5), sites interleaved as real traffic
//!    would; steps 2 then 3 again, now for every site, and stats of the busy site and of random
//!    sites among the N with all the data present.
//!
//! Every batch is a distinct visitor (its own IPv6 /64 and User-Agent) starting a session: a
//! pageview and a click, a scroll every other batch (`--batch-size 1k`: a scroll, two clicks and
//! a time event, URLs with campaign parameters; about 1 KB). Each site cycles through 8 pages,
//! 6 click selectors and 5 referrers, offset by its number.
//!
//! **How the drain is timed.** From the aggregator's start until its
//! `convertpulse_aggregator_events_total` reaches the events of the accepted batches (polled
//! from its metrics every 50 ms; it is incremented after the flush that wrote them is done).
//! Then the stats of EVERY site are compared with what it got 202s for: one pass over all the
//! sites, a few at a time, then passes over the ones not yet equal until a grace period ends;
//! that check is timed on its own: with 1,000 sites it takes as long as 1,000 stats queries,
//! which would otherwise dominate the figure. An aggregator without that counter (an older
//! build) is timed by the stats check itself, and the report says so.
//!
//! The check reads each site's last 24 hours (all the data is from the last minutes): with the
//! rollup layout of issue 18's time and 1,000 sites' data present, a 7-day query took 0.5-0.9 s
//! against 0.05-0.1 s for 24 hours, and a 7-day check of every site 11 minutes. The timed 24h,
//! 7d and 90d queries check the totals they answer too, so the day rollups of the busy site and
//! of the sampled sites are checked as well.

use std::process::Child;

use futures::StreamExt;

use super::{
    rollups::{Counters, counters, cpu_seconds},
    *,
};

/// Stats requests in flight at once while checking every site: enough to keep the api busy,
/// few enough that the check does not starve the aggregator it is waiting for.
const CHECK_CONCURRENCY: usize = 4;
/// Sites created at once.
const CREATE_CONCURRENCY: usize = 8;
/// After the counter says every batch is counted, how long the stats may take to agree.
const CHECK_GRACE: Duration = Duration::from_secs(60);
/// Longest drain before the run is declared failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(1800);
/// Tries per batch on a transport error, 429 or 503 (resending a batch id is safe: it is counted once).
const SEND_TRIES: u32 = 5;

const PAGES: [&str; 8] = ["/", "/pricing", "/features", "/signup", "/blog/launch", "/docs/start", "/about", "/contact"];
const REFERRERS: [&str; 5] =
    ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x", "https://example.org/post"];
const BUTTONS: [(&str, &str); 6] = [
    ("button#cta", "Start free trial"),
    ("a.nav-pricing", "Pricing"),
    ("button.plan-pro", "Choose Pro"),
    ("a#docs", "Read the docs"),
    ("form#signup button", "Sign up"),
    ("a.footer-contact", "Contact us"),
];

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// A pageview starting a session, a click, a scroll every other batch (~400-500 bytes).
    Small,
    /// A scroll, two clicks and a time event, URLs with campaign parameters (~1 KB).
    Kilobyte,
    /// The same with what the v3 snippet adds: a section and a CTA seen, the clicks' positions
    /// (~1.3 KB).
    Attention,
    /// Attention batches as sessions of three (a page each, the first starting the session),
    /// the third with a `Purchase` carrying revenue and a plan (issue 22: exits, revenue, time
    /// to conversion and properties all have something to count).
    Journey,
}

/// What accepted batches hold, per site or in total.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    batches: u64,
    events: u64,
    pageviews: u64,
    clicks: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.batches += o.batches;
        self.events += o.events;
        self.pageviews += o.pageviews;
        self.clicks += o.clicks;
    }
}

/// [`Counts`] that every sender adds to: one per site, whatever the concurrency.
#[derive(Default)]
struct SharedCounts([AtomicU64; 4]);

impl SharedCounts {
    fn add(&self, c: Counts) {
        for (a, n) in self.0.iter().zip([c.batches, c.events, c.pageviews, c.clicks]) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self) -> Counts {
        let [batches, events, pageviews, clicks] = self.0.each_ref().map(|a| a.load(Ordering::Relaxed));
        Counts { batches, events, pageviews, clicks }
    }
}

struct Site {
    id: String,
    key: String,
    /// Index of the owning account's token.
    account: usize,
}

/// The stack and the accounts made so far.
struct Ctx {
    http: reqwest::Client,
    api: String,
    ingest: String,
    tokens: Vec<String>,
    start_cmd: String,
    metrics_url: String,
    concurrency: usize,
}

/// `n`-th batch of the run (`n` is unique across the run), the `j`-th of site number `site_no`.
fn batch(key: &str, n: u64, j: u64, site_no: u64, shape: Shape, now_ms: i64) -> (String, Counts) {
    let page = PAGES[((j + site_no) % PAGES.len() as u64) as usize];
    let referrer = REFERRERS[((j + 3 * site_no) % REFERRERS.len() as u64) as usize];
    let (sel, text) = BUTTONS[((j + 2 * site_no) % BUTTONS.len() as u64) as usize];
    let page_id = format!("tp{n:010x}");
    let mut events = Vec::with_capacity(5);
    let (url, title) = match shape {
        Shape::Small => (format!("https://loadtest.example{page}"), "Load test".to_string()),
        Shape::Kilobyte | Shape::Attention | Shape::Journey => (
            format!("https://loadtest.example{page}?utm_source=newsletter&utm_campaign=spring-{j}"),
            format!("Spring launch: {page} | Load test"),
        ),
    };
    let journey = shape == Shape::Journey;
    let step = if journey { n % 3 } else { 0 };
    events.push(json!({"type": "pageview", "ts": now_ms, "page_id": page_id, "url": url, "referrer": referrer, "title": title, "new_session": step == 0}));
    let mut clicks = 1;
    match shape {
        Shape::Small => {
            if n.is_multiple_of(2) {
                events.push(
                    json!({"type": "scroll", "ts": now_ms + 800, "page_id": page_id, "url": url, "depth": 50, "prev": 0}),
                );
            }
            events.push(
                json!({"type": "click", "ts": now_ms + 1500, "page_id": page_id, "url": url, "selector": sel, "text": text}),
            );
        }
        Shape::Kilobyte | Shape::Attention | Shape::Journey => {
            let (sel2, text2) = BUTTONS[((j + 2 * site_no + 1) % BUTTONS.len() as u64) as usize];
            events
                .push(json!({"type": "scroll", "ts": now_ms + 800, "page_id": page_id, "url": url, "depth": 50, "prev": 0}));
            let mut click1 =
                json!({"type": "click", "ts": now_ms + 1500, "page_id": page_id, "url": url, "selector": sel, "text": text});
            let mut click2 = json!({"type": "click", "ts": now_ms + 6000, "page_id": page_id, "url": url, "selector": sel2, "text": text2});
            if shape != Shape::Kilobyte {
                // What the v3 snippet adds: the section and the CTA seen, and where clicks land.
                let at = |k: u64| ((n * 37 + k * 11) % 1000) as f64 / 1000.0;
                events.push(json!({"type": "view", "ts": now_ms + 1200, "page_id": page_id, "url": url, "kind": "section",
                                   "name": "hero", "order": 0, "seen": true, "ms": 1000 + j % 5000}));
                events.push(json!({"type": "view", "ts": now_ms + 1300, "page_id": page_id, "url": url, "kind": "cta",
                                   "name": sel, "seen": true, "ms": 1000}));
                (click1["x"], click1["y"], click2["x"], click2["y"]) =
                    (json!(at(1)), json!(at(2)), json!(at(3)), json!(at(4)));
            }
            events.push(click1);
            events.push(click2);
            events.push(json!({"type": "time", "ts": now_ms + 9000, "page_id": page_id, "url": url, "seconds": 9}));
            if journey && step == 2 {
                let plan = ["pro", "basic", "team"][(n / 3 % 3) as usize];
                events
                    .push(json!({"type": "event", "ts": now_ms + 9500, "page_id": page_id, "url": url, "name": "Purchase",
                                   "props": {"revenue": 10 + n % 90, "plan": plan}}));
            }
            clicks = 2;
        }
    }
    let counts = Counts { batches: 1, events: events.len() as u64, pageviews: 1, clicks };
    let session = if journey { n / 3 } else { n };
    let body =
        json!({"key": key, "batch_id": format!("tb{n:010x}"), "session_id": format!("ts{session:010x}"), "events": events});
    (body.to_string(), counts)
}

/// The visitor of batch `n`: an address in a /64 of its own (ingest limits IPv6 clients per
/// /64, and the visitor id hashes address and User-Agent) and a User-Agent of its own.
fn visitor(n: u64) -> (String, String) {
    let ip = format!("2001:db8:{:x}:{:x}::1", (n >> 16) & 0xffff, n & 0xffff);
    let ua = format!(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.{n}.0 Safari/537.36"
    );
    (ip, ua)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Registers accounts and creates `n` sites, at most `per_account` in each account. Each
/// registration comes from an address of its own (the api limits registrations per address;
/// the bench trusts the local proxy header).
async fn create_sites(ctx: &mut Ctx, label: &str, n: u64, per_account: u64) -> anyhow::Result<Vec<Site>> {
    let mut sites = Vec::with_capacity(n as usize);
    let mut created = 0;
    while created < n {
        let account = ctx.tokens.len();
        let email = format!("tenancy-{}-{label}-{account}@loadtest.example", std::process::id());
        let res = ctx
            .http
            .post(format!("{}/api/auth/register", ctx.api))
            .header("x-forwarded-for", format!("2001:db8:fffe:{account:x}::1"))
            .json(&json!({"email": email, "password": "loadgen-password"}))
            .send()
            .await
            .context("registering an account")?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "registering account {account}: api answered {status}: {body}");
        ctx.tokens.push(body["token"].as_str().context("register: no token")?.to_string());
        let in_this = per_account.min(n - created);
        let (http, api, token) = (&ctx.http, &ctx.api, &ctx.tokens[account]);
        let made: Vec<anyhow::Result<Site>> = futures::stream::iter(created..created + in_this)
            .map(|i| async move {
                let s = api_json(
                    http,
                    reqwest::Method::POST,
                    format!("{api}/api/sites"),
                    Some(token),
                    Some(json!({"name": format!("{label} {i}"), "domain": "loadtest.example"})),
                )
                .await
                .with_context(|| format!("creating site {i} ({} in account {account})", i - created + 1))?;
                Ok(Site {
                    id: s["id"].as_str().context("site: no id")?.to_string(),
                    key: s["api_key"].as_str().context("site: no api_key")?.to_string(),
                    account,
                })
            })
            .buffered(CREATE_CONCURRENCY)
            .collect()
            .await;
        for s in made {
            sites.push(s?);
        }
        created += in_this;
    }
    Ok(sites)
}

/// Creates `k` segments on each site, each matching every session (an OS that is not
/// `(none)`): the worst case of what segments cost, every batch counted k more times.
async fn create_segments(ctx: &Ctx, sites: &[Site], k: u64) -> anyhow::Result<()> {
    if k == 0 {
        return Ok(());
    }
    let (http, api) = (&ctx.http, &ctx.api);
    let made: Vec<anyhow::Result<Value>> = futures::stream::iter(sites.iter().flat_map(|s| (0..k).map(move |i| (s, i))))
        .map(|(site, i)| async move {
            let body =
                json!({"name": format!("all {i}"), "filters": [{"dimension": "os", "op": "is_not", "value": "(none)"}]});
            api_json(
                http,
                reqwest::Method::POST,
                format!("{api}/api/sites/{}/segments", site.id),
                Some(&ctx.tokens[site.account]),
                Some(body),
            )
            .await
            .with_context(|| format!("creating segment {i} of site {}", site.id))
        })
        .buffered(CREATE_CONCURRENCY)
        .collect()
        .await;
    for m in made {
        m?;
    }
    Ok(())
}

/// Waits until ingest knows every key. The probe is a batch from a crawler's User-Agent:
/// ingest checks the key (401 while unknown), then answers 202 and publishes nothing.
async fn wait_for_keys(ctx: &Ctx, sites: &[Site]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("{}/api/events/batch", ctx.ingest);
    let mut pending: Vec<&Site> = sites.iter().collect();
    loop {
        let (http, url) = (&ctx.http, &url);
        let known: Vec<bool> = futures::stream::iter(pending.iter())
            .map(|s| async move {
                let (body, _) = batch(&s.key, u64::MAX >> 8, 0, 0, Shape::Small, now_ms());
                let res = http
                    .post(url)
                    .header("x-forwarded-for", "2001:db8:fffd::1")
                    .header("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let known = r.status() == 202;
                        let _ = r.bytes().await;
                        known
                    }
                    Err(_) => false,
                }
            })
            .buffered(CREATE_CONCURRENCY * 2)
            .collect()
            .await;
        let mut it = known.into_iter();
        pending.retain(|_| !it.next().unwrap_or(false));
        if pending.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest still refuses {} of {} site keys after 60 s",
            pending.len(),
            sites.len()
        );
        // The poll interval of this deadline loop.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What one phase's sending got.
struct Sent {
    per_site: Vec<Counts>,
    total: Counts,
    bytes: u64,
    refused: BTreeMap<u16, u64>,
    secs: f64,
}

/// Sends `per_site` batches to each site, sites interleaved (batch `i` goes to site `i % len`),
/// `concurrency` requests at a time. Batch numbers start at `first`.
async fn send(ctx: &Ctx, sites: &[Site], per_site: u64, first: u64, shape: Shape) -> anyhow::Result<Sent> {
    let keys: Arc<Vec<String>> = Arc::new(sites.iter().map(|s| s.key.clone()).collect());
    let tally: Arc<Vec<SharedCounts>> = Arc::new(sites.iter().map(|_| SharedCounts::default()).collect());
    let total = keys.len() as u64 * per_site;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(ctx.concurrency);
    for _ in 0..ctx.concurrency {
        let (http, url, keys, tally, next) =
            (ctx.http.clone(), format!("{}/api/events/batch", ctx.ingest), keys.clone(), tally.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused: BTreeMap<u16, u64> = BTreeMap::new();
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let site = (i % keys.len() as u64) as usize;
                let n = first + i;
                let (body, counts) = batch(&keys[site], n, i / keys.len() as u64, site as u64, shape, now_ms());
                let (ip, ua) = visitor(n);
                let mut tries = 0;
                let status = loop {
                    tries += 1;
                    let res = http
                        .post(&url)
                        .header("x-forwarded-for", &ip)
                        .header("user-agent", &ua)
                        .body(body.clone())
                        .send()
                        .await;
                    let status = match res {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            // Read to the end, so that the connection goes back to the pool.
                            let answer = r.text().await.unwrap_or_default();
                            if s != 202 && refused.is_empty() {
                                eprintln!("  batch {n}: {s} {answer}");
                            }
                            s
                        }
                        Err(_) => 0,
                    };
                    if matches!(status, 0 | 429 | 503) && tries < SEND_TRIES {
                        // Pacing: a refused batch is retried after a growing pause, as the tracker does.
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                        continue;
                    }
                    break status;
                };
                if status == 202 {
                    tally[site].add(counts);
                    bytes += body.len() as u64;
                } else {
                    *refused.entry(status).or_default() += 1;
                }
            }
            (refused, bytes)
        }));
    }
    let mut sent = Sent { per_site: Vec::new(), total: Counts::default(), bytes: 0, refused: BTreeMap::new(), secs: 0.0 };
    for t in tasks {
        let (refused, bytes) = t.await.context("a sender task failed")?;
        for (s, n) in refused {
            *sent.refused.entry(s).or_default() += n;
        }
        sent.bytes += bytes;
    }
    sent.secs = started.elapsed().as_secs_f64();
    sent.per_site = tally.iter().map(SharedCounts::get).collect();
    for c in &sent.per_site {
        sent.total.add(*c);
    }
    Ok(sent)
}

/// The aggregator this run started; stopped (SIGTERM) when dropped, also on an early error.
struct Aggregator(Child);

impl Aggregator {
    fn start(cmd: &str) -> anyhow::Result<Self> {
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .spawn()
            .context("starting the aggregator")?;
        Ok(Self(child))
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// The value of an unlabelled metric, `None` when the text has no such line.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Pageviews and clicks of a stats answer, `None` when it has none.
fn totals(stats: &Value) -> Option<(u64, u64)> {
    Some((stats["summary"]["pageviews"].as_u64()?, stats["summary"]["clicks"].as_u64()?))
}

/// What a site's stats of the last 24 hours show (see the module doc), `None` when unreadable.
async fn shown(http: &reqwest::Client, api: &str, token: &str, site: &str) -> Option<(u64, u64)> {
    totals(
        &api_json(http, reqwest::Method::GET, format!("{api}/api/stats/{site}?timeframe=24h"), Some(token), None)
            .await
            .ok()?,
    )
}

/// Compares every site's stats with what it was sent: one pass over all, then passes over those
/// not yet equal, until all are or `deadline` passes. Returns the sites still different, with
/// what their stats last showed.
async fn check(ctx: &Ctx, sites: &[Site], sent: &[Counts], deadline: Instant) -> Vec<(usize, Option<(u64, u64)>)> {
    let mut pending: Vec<(usize, Option<(u64, u64)>)> = (0..sites.len()).map(|i| (i, None)).collect();
    loop {
        let (http, api, tokens) = (&ctx.http, &ctx.api, &ctx.tokens);
        pending = futures::stream::iter(pending)
            .map(|(i, _)| async move { (i, shown(http, api, &tokens[sites[i].account], &sites[i].id).await) })
            .buffer_unordered(CHECK_CONCURRENCY)
            .filter(|(i, seen)| std::future::ready(*seen != Some((sent[*i].pageviews, sent[*i].clicks))))
            .collect()
            .await;
        if pending.is_empty() || Instant::now() >= deadline {
            pending.sort_unstable_by_key(|(i, _)| *i);
            return pending;
        }
        // The poll interval of this deadline loop.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One phase's drain: its time, its cost, the check of every site.
struct Drained {
    secs: f64,
    /// Timed by the aggregator's events counter (else by the stats check).
    by_counter: bool,
    /// Counter values and CPU seconds when every batch was counted.
    cost: Counters,
    cpu: f64,
    check_secs: f64,
    mismatches: Vec<String>,
}

async fn drain(ctx: &Ctx, sites: &[Site], sent: &Sent) -> anyhow::Result<Drained> {
    let mut agg = Aggregator::start(&ctx.start_cmd)?;
    let started = Instant::now();
    let pid = agg.0.id();
    let cpu0 = cpu_seconds(pid);
    let deadline = started + DRAIN_LIMIT;
    // Counter mode once the metrics answer with the events counter; stats mode if they answer without it.
    let by_counter = loop {
        if let Some(status) = agg.0.try_wait()? {
            bail!("the aggregator exited ({status}) during the drain; see its log");
        }
        anyhow::ensure!(Instant::now() < deadline, "backlog not drained in {} minutes", DRAIN_LIMIT.as_secs() / 60);
        if let Ok(r) = ctx.http.get(&ctx.metrics_url).send().await {
            let text = r.text().await.unwrap_or_default();
            match metric(&text, "convertpulse_aggregator_events_total") {
                None if !text.is_empty() => break false,
                Some(events) if events >= sent.total.events as f64 => break true,
                _ => {}
            }
        }
        // The poll interval of this deadline loop (50 ms: the drain time is what it measures).
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut secs = started.elapsed().as_secs_f64();
    let cost = counters(&ctx.http, &ctx.metrics_url).await;
    let mut cpu = cpu_seconds(pid) - cpu0;
    let check_started = Instant::now();
    let left = check(ctx, sites, &sent.per_site, if by_counter { Instant::now() + CHECK_GRACE } else { deadline }).await;
    let check_secs = check_started.elapsed().as_secs_f64();
    if !by_counter {
        secs = started.elapsed().as_secs_f64();
        cpu = cpu_seconds(pid) - cpu0;
    }
    drop(agg);
    let mismatches = left
        .iter()
        .map(|(i, seen)| {
            let want = sent.per_site[*i];
            let seen = seen.map_or("unreadable stats".to_string(), |(pv, c)| format!("{pv} pageviews, {c} clicks"));
            format!(
                "site {} ({}): stats show {seen}; sent (202) {} pageviews, {} clicks",
                i, sites[*i].id, want.pageviews, want.clicks
            )
        })
        .collect();
    Ok(Drained { secs, by_counter, cost, cpu, check_secs, mismatches })
}

/// Sorted latencies (µs) of `n` stats queries for `timeframe`, one at a time, each of a random
/// one of `sites`. Each answer's totals must equal what its site was sent (`sent`); a
/// difference is added to `mismatches`.
async fn query_times(
    ctx: &Ctx,
    sites: &[Site],
    sent: &[Counts],
    timeframe: &str,
    n: usize,
    rng: &mut Rng,
    mismatches: &mut Vec<String>,
) -> anyhow::Result<Vec<u64>> {
    let mut q = Vec::with_capacity(n);
    for _ in 0..n {
        let i = rng.below(sites.len() as u64) as usize;
        let site = &sites[i];
        let t0 = Instant::now();
        let res = ctx
            .http
            .get(format!("{}/api/stats/{}?timeframe={timeframe}", ctx.api, site.id))
            .bearer_auth(&ctx.tokens[site.account])
            .send()
            .await?;
        let status = res.status();
        let body = res.bytes().await?;
        q.push(t0.elapsed().as_micros() as u64);
        anyhow::ensure!(status.is_success(), "stats of {} answered {status}", site.id);
        let seen = serde_json::from_slice::<Value>(&body).ok().as_ref().and_then(totals);
        if seen != Some((sent[i].pageviews, sent[i].clicks)) {
            let m = format!(
                "site {} {timeframe} stats show {seen:?} (pageviews, clicks); sent (202) {} pageviews, {} clicks",
                site.id, sent[i].pageviews, sent[i].clicks
            );
            if !mismatches.contains(&m) {
                mismatches.push(m);
            }
        }
    }
    q.sort_unstable();
    Ok(q)
}

const TIMEFRAMES: [&str; 3] = ["24h", "7d", "90d"];

/// p50 and p99 in ms per timeframe.
async fn latencies(
    ctx: &Ctx,
    sites: &[Site],
    sent: &[Counts],
    n: usize,
    rng: &mut Rng,
    mismatches: &mut Vec<String>,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for tf in TIMEFRAMES {
        let q = query_times(ctx, sites, sent, tf, n, rng, mismatches).await?;
        out.push((pct(&q, 0.5), pct(&q, 0.99)));
    }
    Ok(out)
}

struct PhaseResult {
    sent: Sent,
    drained: Drained,
    load: String,
}

async fn phase(
    ctx: &Ctx,
    name: &str,
    sites: &[Site],
    per_site: u64,
    first: u64,
    shape: Shape,
) -> anyhow::Result<PhaseResult> {
    let sent = send(ctx, sites, per_site, first, shape).await?;
    let refused: Vec<String> = sent
        .refused
        .iter()
        .map(|(s, n)| format!("{n} × {}", if *s == 0 { "no answer".to_string() } else { s.to_string() }))
        .collect();
    println!(
        "{name}: {} of {} batches accepted in {:.1} s ({:.0}/s, {:.0} bytes each), refused: {}",
        sent.total.batches,
        sites.len() as u64 * per_site,
        sent.secs,
        sent.total.batches as f64 / sent.secs,
        sent.bytes as f64 / sent.total.batches.max(1) as f64,
        if refused.is_empty() { "none".to_string() } else { refused.join(", ") }
    );
    let drained = drain(ctx, sites, &sent).await?;
    let load = loadavg();
    println!(
        "{name}: drained in {:.1} s ({}); stats of all {} sites checked in {:.1} s: {}; load {load}",
        drained.secs,
        if drained.by_counter {
            "timed by the aggregator's events counter"
        } else {
            "timed by the stats check: the aggregator has no events counter"
        },
        sites.len(),
        drained.check_secs,
        if drained.mismatches.is_empty() {
            "every site equals what it was sent".to_string()
        } else {
            format!("{} MISMATCHES", drained.mismatches.len())
        }
    );
    for m in drained.mismatches.iter().take(20) {
        println!("  MISMATCH {m}");
    }
    if drained.mismatches.len() > 20 {
        println!("  ... and {} more", drained.mismatches.len() - 20);
    }
    Ok(PhaseResult { sent, drained, load })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}", a / b) } else { "—".into() }
}

pub async fn drive(args: Args) -> anyhow::Result<()> {
    let n = args.tenancy.unwrap_or(1000).max(1);
    let per_site = args.batches_per_site;
    let busy_batches = args.busy_batches.unwrap_or(n * per_site).max(1);
    let shape = match args.batch_size.as_str() {
        "small" => Shape::Small,
        "1k" => Shape::Kilobyte,
        "1k-attention" => Shape::Attention,
        "1k-journey" => Shape::Journey,
        other => bail!("--batch-size {other:?}: small, 1k, 1k-attention or 1k-journey"),
    };
    let mut ctx = Ctx {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency.max(CHECK_CONCURRENCY))
            .timeout(Duration::from_secs(60))
            .build()?,
        api: args.api.clone(),
        ingest: args.ingest.clone(),
        tokens: Vec::new(),
        start_cmd: args.start_aggregator.clone().context("--tenancy needs --start-aggregator")?,
        metrics_url: args.aggregator_metrics.clone().context("--tenancy needs --aggregator-metrics")?,
        concurrency: args.concurrency.max(1),
    };
    let queries = args.stats_queries.max(1);
    println!(
        "tenancy: one busy site with {busy_batches} batches, then {n} sites with {per_site} each ({} batches, {} sites per account at most, {} segments each, matching every session); batches: {}; {} stats queries per timeframe and target; load {}",
        n * per_site,
        args.sites_per_account,
        args.segments,
        match shape {
            Shape::Small => "pageview + click (+ scroll every other)",
            Shape::Kilobyte => "~1 KB: pageview, scroll, 2 clicks, time",
            Shape::Attention => "~1.5 KB: pageview, scroll, a section and a CTA seen, 2 clicks with positions, time",
            Shape::Journey => "1k-attention in sessions of 3 batches, the third with a Purchase (revenue, plan)",
        },
        queries,
        loadavg()
    );

    let busy = create_sites(&mut ctx, "busy", 1, 1).await?;
    create_segments(&ctx, &busy, args.segments).await?;
    wait_for_keys(&ctx, &busy).await?;
    let one = phase(&ctx, "one busy site", &busy, busy_batches, 0, shape).await?;
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let mut query_mismatches = Vec::new();
    let alone = latencies(&ctx, &busy, &one.sent.per_site, queries, &mut rng, &mut query_mismatches).await?;
    let alone_load = loadavg();

    let t0 = Instant::now();
    let many = create_sites(&mut ctx, "site", n, args.sites_per_account).await?;
    create_segments(&ctx, &many, args.segments).await?;
    wait_for_keys(&ctx, &many).await?;
    println!("created {n} sites in {} accounts in {:.1} s", ctx.tokens.len() - 1, t0.elapsed().as_secs_f64());
    let all = phase(&ctx, &format!("{n} sites"), &many, per_site, busy_batches, shape).await?;
    let busy_with = latencies(&ctx, &busy, &one.sent.per_site, queries, &mut rng, &mut query_mismatches).await?;
    let any_with = latencies(&ctx, &many, &all.sent.per_site, queries, &mut rng, &mut query_mismatches).await?;
    let with_load = loadavg();

    println!();
    println!("| figure | one busy site | {n} sites × {per_site} batches | ratio |");
    println!("|---|---|---|---|");
    let row =
        |name: &str, a: f64, b: f64, digits: usize| println!("| {name} | {a:.digits$} | {b:.digits$} | {} |", ratio(b, a));
    let (a, b) = (&one, &all);
    row("batches accepted", a.sent.total.batches as f64, b.sent.total.batches as f64, 0);
    row(
        "sent: batches/s accepted by ingest",
        a.sent.total.batches as f64 / a.sent.secs,
        b.sent.total.batches as f64 / b.sent.secs,
        0,
    );
    row(
        "drain: batches/s counted (aggregator start → all counted)",
        a.sent.total.batches as f64 / a.drained.secs,
        b.sent.total.batches as f64 / b.drained.secs,
        0,
    );
    let sc = |p: &PhaseResult| p.sent.total.batches as f64 / (p.sent.secs + p.drained.secs);
    row("batches/s sent and counted (first send → all counted)", sc(a), sc(b), 0);
    let per = |p: &PhaseResult| {
        let c = p.drained.cost;
        (
            c.docs_written * 1000.0 / c.events.max(1.0),
            c.round_trips / c.flushes.max(1.0),
            p.sent.total.batches as f64 / c.flushes.max(1.0),
            p.drained.cpu * 1e6 / p.sent.total.batches.max(1) as f64,
        )
    };
    let (pa, pb) = (per(a), per(b));
    row("documents written / 1,000 events", pa.0, pb.0, 0);
    row("round trips / flush", pa.1, pb.1, 1);
    row("batches / flush", pa.2, pb.2, 0);
    row("aggregator CPU µs / batch", pa.3, pb.3, 0);
    println!("| stats check of every site (24h), s | {:.1} | {:.1} | — |", a.drained.check_secs, b.drained.check_secs);
    println!("load average (1, 5, 15 min) at the end of each drain: {} | {}", a.load, b.load);

    println!();
    println!(
        "| stats timeframe | busy site alone p50 / p99 ms | busy site, {n} sites' data present | any of the {n} sites | p50 ratio busy / alone | p50 ratio any / alone |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, tf) in TIMEFRAMES.iter().enumerate() {
        let (al, bw, aw) = (alone[i], busy_with[i], any_with[i]);
        println!(
            "| {tf} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} |",
            al.0,
            al.1,
            bw.0,
            bw.1,
            aw.0,
            aw.1,
            ratio(bw.0, al.0),
            ratio(aw.0, al.0)
        );
    }
    println!("load average when the queries ended: alone {alone_load} | with every site's data {with_load}");

    for m in query_mismatches.iter().take(20) {
        println!("  MISMATCH {m}");
    }
    let failures = one.drained.mismatches.len() + all.drained.mismatches.len();
    if failures > 0 || !query_mismatches.is_empty() {
        bail!(
            "{failures} sites' stats differ from what they were sent after the drain, and {} timed stats answers do (see MISMATCH lines above)",
            query_mismatches.len()
        );
    }
    Ok(())
}
