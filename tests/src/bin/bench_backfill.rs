//! Backfill speed: how fast a new goal's and a new funnel's backfill goes through the raw
//! batches kept, in raw events per second, against a plain read of the same batches in the same
//! run (`make bench-backfill`, docs/benchmarks.md "Backfill speed").
//!
//! ```text
//! bench_backfill          # tunables from the environment, defaults in brackets:
//!   BENCH_DAYS (90) BENCH_BATCHES_PER_DAY (1000)   the site measured: days of raw batches kept
//!   BENCH_OTHER_BATCHES_PER_DAY (250)              another site's batches, interleaved (noise)
//!   BENCH_LIVE_DAYS (2)     the last days go through the aggregator's flush (sessions documents
//!                           exist for them, as the backfill's resolve phase expects); the older
//!                           days are inserted directly (`insert_many` of raw batch documents)
//!   BENCH_ROUNDS (3)        rounds of baseline, goal, funnel on the same data
//!   BENCH_ACCOUNT (1)       one more round with command monitoring: round trips, documents read
//!                           and written, time in each command (0: skip)
//!   BENCH_CHUNK             raw batches per backfill chunk (default: the aggregator's)
//!   BENCH_SEED (1)          the generator's seed
//!   BENCH_PERF              baseline, goal or funnel: `perf record` (DWARF call graphs) of this
//!                           process during that phase of round 1, into BENCH_PERF_OUT
//!                           (perf-backfill.data)
//!   MONGODB_URI             a server to use instead of starting nx-27017 (CP_NX_BIN)
//! ```
//!
//! The baseline is the backfill's own read without the backfill: `find` with its filter
//! (`{site_id, received_at: {$gte, $lt}}`) and sort (`{received_at: 1, _id: 1}`), batches of
//! 1,000, every document deserialized into a `RawBatchDoc`. The goal and the funnel are each a
//! backfill job run to completion (`Flusher::backfill_once` until no job is left): wait, scan
//! (every raw batch of the site before the cut), resolve (the sessions first seen within two
//! days before the cut, through their session documents). Rates are the site's raw events
//! before the cut over the wall time; CPU is this process's (the backfill's code, the driver)
//! and the stand-in's, from `/proc`; "wall-CPU" is the wall time neither used a core (waiting
//! for one on a busy host, or for the disk). Each round starts with another phase.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::{Child, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use aggregator::{
    flush::{
        Flusher, Settings, Verdict,
        backfill::{Backlog, Turn},
    },
    rollup::Capacities,
};
use anyhow::{Context, bail};
use api::{stats_store, timeframe::Range};
use chrono_tz::Tz;
use cp_tests::bench::{CAMPAIGNS, CATEGORIES, Perf, Rng, TOPICS, clock_ticks, cpu_secs, env_num, loadavg};
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, DateTime, doc},
    event::{EventHandler, command::CommandEvent},
    options::ClientOptions,
};
use shared::{
    audience::{Browser, Country, Device, Os},
    backfill::{BackfillDoc, ItemKind},
    event::{ClientId, Event, EventKind, PropValue},
    funnel::{FunnelDoc, FunnelStep},
    goal::GoalKind,
    ids::BatchId,
    message::BatchMessage,
    names::collections as c,
    rollup::Dim,
    site_config::{GoalDoc, SiteConfigDoc},
    store::RawBatchDoc,
};

const DAY: i64 = 86_400_000;
const SITE: &str = "site-bench";
const OTHER_SITE: &str = "site-other";
const ORIGIN: &str = "https://shop.example.com";
const TZ: Tz = chrono_tz::Europe::Berlin;
/// The funnel: the pricing page, the call to action, the signup.
const PRICING: &str = "/pricing";
const CTA: &str = "button#cta-signup";
const SIGNUP: &str = "Signup";
/// Batches per live flush, the aggregator's default (`CP_FLUSH_MAX_BATCHES`).
const FLUSH_BATCHES: usize = 500;

struct Opts {
    days: i64,
    per_day: usize,
    other_per_day: usize,
    live_days: i64,
    rounds: usize,
    account: bool,
    chunk: Option<usize>,
    seed: u64,
    /// `baseline`, `goal` or `funnel`: `perf record` that phase of round 1 into `perf_out`.
    perf: Option<String>,
    perf_out: String,
}

impl Opts {
    fn from_env() -> anyhow::Result<Self> {
        let o = Self {
            days: env_num("BENCH_DAYS", 90)?,
            per_day: env_num("BENCH_BATCHES_PER_DAY", 1000)?,
            other_per_day: env_num("BENCH_OTHER_BATCHES_PER_DAY", 250)?,
            live_days: env_num("BENCH_LIVE_DAYS", 2)?,
            rounds: env_num("BENCH_ROUNDS", 3)?,
            account: env_num("BENCH_ACCOUNT", 1)? != 0,
            chunk: match env_num("BENCH_CHUNK", 0_usize)? {
                0 => None,
                n => Some(n),
            },
            seed: env_num("BENCH_SEED", 1)?,
            perf: std::env::var("BENCH_PERF").ok().filter(|p| !p.is_empty()).map(|p| match p.as_str() {
                "baseline" => "a-baseline".to_string(),
                "goal" => "b-goal".to_string(),
                "funnel" => "c-funnel".to_string(),
                other => other.to_string(),
            }),
            perf_out: std::env::var("BENCH_PERF_OUT").unwrap_or_else(|_| "perf-backfill.data".into()),
        };
        if let Some(p) = &o.perf
            && !["a-baseline", "b-goal", "c-funnel"].contains(&p.as_str())
        {
            bail!("BENCH_PERF={p}: baseline, goal or funnel");
        }
        if o.days < 1 || o.per_day < 3 || o.rounds > 9 || (o.rounds == 0 && !o.account) {
            bail!("BENCH_DAYS >= 1, BENCH_BATCHES_PER_DAY >= 3 and BENCH_ROUNDS 1..=9 (0 with BENCH_ACCOUNT=1), please");
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// The MongoDB server.

/// nx-27017 started here (killed and its directory removed on drop), or `MONGODB_URI`.
struct Server {
    uri: String,
    child: Option<Child>,
    dir: PathBuf,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("cp-bench-backfill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nx")).context("temp dir")?;
        let server = match std::env::var("MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => Self { uri, child: None, dir },
            _ => {
                let port = cp_tests::stack::free_port();
                let child = cp_tests::stack::nx_command(&dir, &port.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting nx-27017 (CP_NX_BIN; `make deps` installs it)")?;
                Self { uri: format!("mongodb://127.0.0.1:{port}"), child: Some(child), dir }
            }
        };
        let probe = mongodb::Client::with_uri_str(&server.uri).await?.database("admin");
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe.run_command(doc! {"ping": 1}).await.is_err() {
            if Instant::now() > deadline {
                bail!("MongoDB at {} does not answer", server.uri);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    fn pid(&self) -> Option<String> {
        self.child.as_ref().map(|c| c.id().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Command accounting (the last round only: the driver copies every reply for the handler, which
// costs this process CPU the measured rounds must not pay).

#[derive(Debug, Default, Clone)]
struct Tally {
    trips: u64,
    returned: u64,
    written: u64,
    time: Duration,
}

#[derive(Default)]
struct Ledger {
    started: HashMap<i32, (String, String, u64)>,
    by: BTreeMap<(String, String), Tally>,
}

fn monitor(options: &mut ClientOptions) -> Arc<Mutex<Ledger>> {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let sink = ledger.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        let mut l = sink.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            CommandEvent::Started(s) => {
                let name = s.command_name.clone();
                let coll = match name.as_str() {
                    "getMore" => s.command.get_str("collection").unwrap_or("-").to_string(),
                    _ => s.command.get_str(&name).unwrap_or("-").to_string(),
                };
                let list = match name.as_str() {
                    "insert" => "documents",
                    "update" => "updates",
                    "delete" => "deletes",
                    _ => "",
                };
                let written = match s.command.get_array(list) {
                    Ok(a) => a.len() as u64,
                    Err(_) if name == "findAndModify" => 1,
                    Err(_) => 0,
                };
                l.started.insert(s.request_id, (name, coll, written));
            }
            CommandEvent::Succeeded(s) => {
                let Some((name, coll, written)) = l.started.remove(&s.request_id) else { return };
                let returned = s
                    .reply
                    .get_document("cursor")
                    .ok()
                    .and_then(|c| c.get_array("firstBatch").or_else(|_| c.get_array("nextBatch")).ok())
                    .map_or(0, |b| b.len() as u64);
                let t = l.by.entry((name, coll)).or_default();
                t.trips += 1;
                t.returned += returned;
                t.written += written;
                t.time += s.duration;
            }
            CommandEvent::Failed(f) => {
                l.started.remove(&f.request_id);
            }
            _ => {}
        }
    }));
    ledger
}

fn take(ledger: &Mutex<Ledger>) -> BTreeMap<(String, String), Tally> {
    std::mem::take(&mut ledger.lock().unwrap_or_else(PoisonError::into_inner).by)
}

// ---------------------------------------------------------------------------------------------
// The raw batches.

const DOCS: &[&str] = &["install", "snippet", "goals", "funnels", "segments", "api", "export", "privacy", "faq"];
const SEARCH: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://search.yahoo.com/",
    "https://www.ecosia.org/",
];
const SOCIAL: &[&str] = &[
    "https://news.ycombinator.com/item?id=",
    "https://www.reddit.com/r/",
    "https://t.co/",
    "https://www.linkedin.com/feed/update/",
];
const UTM: &[(&str, &str)] =
    &[("google", "cpc"), ("newsletter", "email"), ("facebook", "paid_social"), ("partner", "referral"), ("bing", "cpc")];
const TAGS: &[&str] = &["button", "a", "div", "span", "img", "li"];
const IDS: &[&str] = &[
    "nav-home",
    "nav-pricing",
    "nav-blog",
    "nav-docs",
    "buy-now",
    "add-to-cart",
    "newsletter-submit",
    "play-video",
    "open-chat",
    "accept-cookies",
    "show-more",
    "next-slide",
    "prev-slide",
    "size-picker",
    "color-picker",
    "faq-toggle",
    "footer-contact",
    "login",
];
const TEXTS: &[&str] =
    &["Learn more", "Buy now", "Add to cart", "Read more", "Next", "Subscribe", "Play", "Pricing", "Docs", "OK"];
const CUSTOM: &[&str] = &["video_play", "newsletter_view", "copy_code", "pricing_toggle", "chat_open", "share", "download"];
const COUNTRIES: &[&str] = &["US", "DE", "GB", "FR", "IN", "BR", "CA", "NL", "ES", "IT", "PL", "SE", "JP", "AU", "??"];

fn path(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=14 => "/".to_string(),
        15..=19 => PRICING.to_string(),
        20..=49 => format!("/blog/{}-{}", rng.pick(TOPICS), rng.below(300)),
        50..=74 => format!("/products/{}/{}", rng.pick(CATEGORIES), rng.below(250)),
        75..=89 => format!("/docs/{}", rng.pick(DOCS)),
        _ => format!("/lp/{}", rng.pick(CAMPAIGNS)),
    }
}

fn referrer(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=29 => String::new(),
        30..=64 => rng.pick(SEARCH).to_string(),
        65..=84 => format!("{}{}", rng.pick(SOCIAL), rng.below(5000)),
        _ => format!("https://blog{}.example.org/posts/{}", rng.below(40), rng.below(500)),
    }
}

fn selector(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=5 => format!("{}#{}", rng.pick(TAGS), rng.pick(IDS)),
        6..=7 => format!("a.card:nth-child({})", rng.below(24) + 1),
        _ => format!("button.sku-{}", rng.below(400)),
    }
}

/// What the generator knows of a session, for checking what the backfills count.
#[derive(Default)]
struct Truth {
    signups: i64,
    funnel: [i64; 3],
}

/// Builds a site's sessions, three batches each, and their events.
struct Site {
    id: &'static str,
    rng: Rng,
    visitors: Vec<String>,
    seq: u64,
    sessions: u64,
}

/// One session's progress through the funnel, in event order.
struct Walk {
    step: usize,
    signed_up: bool,
}

impl Walk {
    fn see(&mut self, kind: &EventKind, path: &str) {
        let hit = match (self.step, kind) {
            (0, EventKind::Pageview { .. }) => path == PRICING,
            (1, EventKind::Click { selector, .. }) => selector == CTA,
            (2, EventKind::Event { name, .. }) => name == SIGNUP,
            _ => false,
        };
        if hit {
            self.step += 1;
        }
        if matches!(kind, EventKind::Event { name, .. } if name == SIGNUP) {
            self.signed_up = true;
        }
    }
}

impl Site {
    fn new(id: &'static str, seed: u64) -> Self {
        Self { id, rng: Rng(seed), visitors: Vec::new(), seq: 0, sessions: 0 }
    }

    /// The sessions starting within `[from, to)`, three batches each.
    fn sessions(&mut self, n: usize, from: i64, to: i64, truth: &mut Truth) -> Vec<BatchMessage> {
        let mut out = Vec::with_capacity(n * 3);
        for _ in 0..n {
            let start = self.rng.range(from, to);
            self.session(start, &mut out, truth);
        }
        out
    }

    fn session(&mut self, start: i64, out: &mut Vec<BatchMessage>, truth: &mut Truth) {
        let rng = &mut self.rng;
        self.seq += 1;
        self.sessions += 1;
        let session_id = format!("s{:x}{:012x}", self.seq, rng.next_u64() & 0xffff_ffff_ffff);
        let visitor = if !self.visitors.is_empty() && rng.chance(30) {
            self.visitors[rng.below(self.visitors.len() as u64) as usize].clone()
        } else {
            let v = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            if self.visitors.len() < 20_000 {
                self.visitors.push(v.clone());
            } else {
                let at = rng.below(self.visitors.len() as u64) as usize;
                self.visitors[at] = v.clone();
            }
            v
        };
        let device = rng.pick(Device::ALL);
        let browser = rng.pick(Browser::ALL);
        let os = rng.pick(Os::ALL);
        let country = Country::parse(rng.pick(COUNTRIES));
        let times = [start, start + rng.range(20_000, 120_000), start + rng.range(150_000, 600_000)];
        // The funnel's path: a third of the sessions see the pricing page, half of them click
        // the call to action, half of those sign up.
        let pricing = rng.chance(35);
        let cta = pricing && rng.chance(50);
        let signup = if cta { rng.chance(50) } else { rng.chance(3) };
        let mut walk = Walk { step: 0, signed_up: false };
        let mut prev_url = String::new();
        for (part, &received_at) in times.iter().enumerate() {
            let p = match part {
                0 => path(rng),
                1 if pricing => PRICING.to_string(),
                2 if signup => "/signup".to_string(),
                _ => path(rng),
            };
            let url = if part == 0 && rng.chance(20) {
                let (source, medium) = rng.pick(UTM);
                format!("{ORIGIN}{p}?utm_source={source}&utm_medium={medium}&utm_campaign={}", rng.pick(CAMPAIGNS))
            } else {
                format!("{ORIGIN}{p}")
            };
            let page_id = ClientId::parse(&format!("p{:015x}", rng.next_u64() >> 4)).expect("a valid page id");
            let referrer = if part == 0 { referrer(rng) } else { prev_url.clone() };
            let mut kinds = vec![EventKind::Pageview {
                referrer,
                title: format!("Shop {}", p.rsplit('/').next().unwrap_or_default()),
                new_session: part == 0,
                variant: None,
            }];
            let target = rng.range(8, 11) as usize;
            let mut depth = 0_u8;
            let mut scroll = |rng: &mut Rng| {
                let prev = depth;
                depth = (depth + 10 + rng.below(30) as u8).min(100);
                EventKind::Scroll { depth, prev }
            };
            kinds.push(scroll(rng));
            kinds.push(scroll(rng));
            let click = |rng: &mut Rng, sel: String| {
                let href = (sel.starts_with("a#") && rng.chance(50)).then(|| format!("{ORIGIN}{}", path(rng)));
                EventKind::Click { selector: sel, text: rng.pick(TEXTS).to_string(), href, marks: Default::default() }
            };
            if part == 1 && cta {
                kinds.push(click(rng, CTA.to_string()));
            } else {
                let sel = selector(rng);
                kinds.push(click(rng, sel));
            }
            let sel = selector(rng);
            kinds.push(click(rng, sel));
            if part == 2 && signup {
                kinds.push(EventKind::Event { name: "form_start".into(), props: Default::default() });
                let plan = if rng.chance(30) { "team" } else { "pro" };
                let props = BTreeMap::from([("plan".to_string(), PropValue::String(plan.into()))]);
                kinds.push(EventKind::Event { name: SIGNUP.into(), props });
            } else {
                kinds.push(EventKind::Event { name: rng.pick(CUSTOM).to_string(), props: Default::default() });
            }
            while kinds.len() + 1 < target {
                if rng.chance(50) {
                    kinds.push(scroll(rng));
                } else {
                    let sel = selector(rng);
                    kinds.push(click(rng, sel));
                }
            }
            kinds.push(EventKind::Time { seconds: (5 + rng.below(170)) as f64 });
            let base = received_at - 60_000;
            let events: Vec<Event> = kinds
                .into_iter()
                .enumerate()
                .map(|(i, kind)| Event { ts: base + i as i64 * 4_000, page_id: page_id.clone(), url: url.clone(), kind })
                .collect();
            for e in &events {
                walk.see(&e.kind, &p);
            }
            self.seq += 1;
            out.push(BatchMessage {
                site_id: self.id.to_string(),
                batch_id: BatchId::new(format!("b{:x}{:016x}", self.seq, rng.next_u64())),
                session_id: session_id.clone(),
                received_at,
                visitor: visitor.clone(),
                timezone: TZ.name().to_string(),
                domain: "shop.example.com".into(),
                device,
                browser,
                os,
                country,
                currency: "USD".into(),
                events,
            });
            prev_url = url;
        }
        truth.signups += i64::from(walk.signed_up);
        for (i, n) in truth.funnel.iter_mut().enumerate() {
            *n += i64::from(walk.step > i);
        }
    }
}

fn raw_doc(msg: BatchMessage) -> RawBatchDoc {
    RawBatchDoc { id: msg.msg_id(), received: DateTime::from_millis(msg.received_at), flush: "bench:0".into(), msg }
}

// ---------------------------------------------------------------------------------------------
// The measured phases.

#[derive(Debug, Clone, Copy)]
enum Phase {
    Baseline,
    Goal,
    Funnel,
}

impl Phase {
    /// The name `BENCH_PERF` takes; also the order rows are printed in.
    fn key(self) -> &'static str {
        match self {
            Self::Baseline => "a-baseline",
            Self::Goal => "b-goal",
            Self::Funnel => "c-funnel",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline read",
            Self::Goal => "goal backfill",
            Self::Funnel => "funnel backfill",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    ours_cpu: f64,
    nx_cpu: Option<f64>,
}

struct Bench {
    flusher: Flusher,
    db: Database,
    cut: i64,
    events: i64,
    ticks: f64,
    nx_pid: Option<String>,
}

fn goal(round: usize, created_ms: i64) -> GoalDoc {
    GoalDoc {
        id: format!("g-signup-{round}"),
        name: format!("Signup {round}"),
        kind: GoalKind::Event,
        matcher: SIGNUP.into(),
        created_ms,
        deleted_ms: None,
        backfilling: true,
    }
}

fn funnel(round: usize, created_ms: i64) -> FunnelDoc {
    let step = |kind, m: &str| FunnelStep { kind, matcher: m.into() };
    FunnelDoc {
        id: format!("f-signup-{round}"),
        name: format!("Pricing to signup {round}"),
        steps: vec![step(GoalKind::Pageview, PRICING), step(GoalKind::Click, CTA), step(GoalKind::Event, SIGNUP)],
        created_ms,
        deleted_ms: None,
        backfilling: true,
    }
}

fn flusher(db: &Database, chunk: Option<usize>) -> Flusher {
    let settings = Settings {
        lease: Duration::from_secs(30),
        caps: Capacities::with_keys(1000, 1000),
        day_retention: Duration::from_secs(400 * 86_400),
        compact_max_bytes: shared::rollup::siteday::COMPACT_MAX_BYTES,
    };
    let f = Flusher::new(db.clone(), settings, shared::clock::system());
    match chunk {
        Some(n) => f.with_backfill_chunk(n),
        None => f,
    }
}

impl Bench {
    async fn run(&self, phase: Phase, round: usize) -> anyhow::Result<Sample> {
        let cpu0 = cpu_secs("self", self.ticks).unwrap_or(0.0);
        let nx0 = self.nx_pid.as_deref().and_then(|p| cpu_secs(p, self.ticks));
        let t0 = Instant::now();
        match phase {
            Phase::Baseline => {
                let filter = doc! {"site_id": SITE, "received_at": {"$gte": 0_i64, "$lt": self.cut}};
                let mut cursor = self
                    .db
                    .collection::<RawBatchDoc>(c::RAW_BATCHES)
                    .find(filter)
                    .sort(doc! {"received_at": 1, "_id": 1})
                    .batch_size(1000)
                    .await?;
                let mut events = 0_i64;
                while let Some(raw) = cursor.try_next().await? {
                    events += raw.msg.events.len() as i64;
                }
                if events != self.events {
                    bail!("the baseline read {events} events, {} were written", self.events);
                }
            }
            Phase::Goal | Phase::Funnel => {
                let (kind, item) = match phase {
                    Phase::Goal => (ItemKind::Goal, goal(round, self.cut).id),
                    _ => (ItemKind::Funnel, funnel(round, self.cut).id),
                };
                let job = BackfillDoc::new(SITE, kind, &item, self.cut);
                self.db.collection::<BackfillDoc>(c::BACKFILLS).insert_one(job).await?;
                let mut turns = 0;
                loop {
                    match self.flusher.backfill_once(&Backlog::Nothing).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                        None => break,
                        Some((_, Turn::Done)) => {}
                        Some((id, turn)) => bail!("backfill {id}: {turn:?} (no other process runs one here)"),
                    }
                    turns += 1;
                    if turns > 10 {
                        bail!("the backfill does not end");
                    }
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let ours_cpu = cpu_secs("self", self.ticks).unwrap_or(0.0) - cpu0;
        let nx_cpu = nx0.and_then(|a| self.nx_pid.as_deref().and_then(|p| cpu_secs(p, self.ticks)).map(|b| b - a));
        Ok(Sample { secs, ours_cpu, nx_cpu })
    }

    /// What the round's items count once backfilled, against what the generator put in.
    async fn check(&self, round: usize, truth: &Truth, days: i64) -> anyhow::Result<String> {
        let day = |ms: i64| shared::time::local_day(ms, TZ);
        let range = Range::Days { label: "custom".into(), from: day(self.cut - (days + 1) * DAY), to: day(self.cut) };
        let g = goal(round, 0).id;
        let f = funnel(round, 0).id;
        let loaded = stats_store::load(&self.db, &stats_store::Scope::bare(SITE), &range, TZ, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let signups =
            loaded.inputs.lists.get(&Dim::Goal).and_then(|rows| rows.iter().find(|r| r.key == g)).map_or(0, |r| r.count);
        let (steps, _) =
            stats_store::load_funnel(&self.db, SITE, &range, TZ, &f, 3).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let line = format!(
            "goal {signups} completions (generated: {}), funnel {steps:?} (generated: {:?})",
            truth.signups, truth.funnel
        );
        if signups != truth.signups || steps != truth.funnel {
            bail!("MISMATCH after round {round}: {line}");
        }
        Ok(line)
    }
}

/// Min and median of each phase over the rounds.
fn summary(samples: &BTreeMap<&str, Vec<Sample>>, events: i64, rounds: usize) {
    let phases = [Phase::Baseline, Phase::Goal, Phase::Funnel];
    println!();
    println!("over {rounds} rounds (min / median):");
    let rates = |name: &str| -> Vec<f64> { samples[name].iter().map(|s| events as f64 / s.secs).collect() };
    let base_rates = rates(Phase::Baseline.name());
    for phase in phases {
        let r = rates(phase.name());
        let ratios: Vec<f64> = r.iter().zip(&base_rates).map(|(a, b)| a / b).collect();
        let ours: Vec<f64> = samples[phase.name()].iter().map(|s| s.ours_cpu * 1e6 / events as f64).collect();
        let nx: Vec<f64> = samples[phase.name()].iter().filter_map(|s| s.nx_cpu).map(|n| n * 1e6 / events as f64).collect();
        let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  {:<16} {:>10} / {:>10} events/s   ratio {:.2} / {:.2}   our CPU {:.2} / {:.2} ms per 1,000 events   nx CPU {}",
            phase.name(),
            thousands(min(&r)),
            thousands(median(r.clone())),
            min(&ratios),
            median(ratios.clone()),
            min(&ours),
            median(ours.clone()),
            if nx.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2} / {:.2} ms per 1,000 events", min(&nx), median(nx.clone()))
            }
        );
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("bench_backfill: backfill speed against a plain read of the same raw batches (see the file's header)");
        return Ok(());
    }
    let opts = Opts::from_env()?;
    let ticks = clock_ticks();
    let server = Server::start().await?;
    let db_name = format!("cp_bench_backfill_{}", std::process::id());
    let db = mongodb::Client::with_options(ClientOptions::parse(&server.uri).await?)?.database(&db_name);
    shared::indexes::ensure_indexes(&db, Some(Duration::from_secs(opts.days.max(90) as u64 * 86_400))).await?;

    // The items are created now; every batch was received before (and more than the publish
    // margin before the first job runs).
    let cut = chrono::Utc::now().timestamp_millis() - 11_000;
    let items = opts.rounds + usize::from(opts.account);
    let config = SiteConfigDoc {
        id: SITE.into(),
        rev: 1,
        goals: (1..=items).map(|r| goal(r, cut)).collect(),
        funnels: (1..=items).map(|r| funnel(r, cut)).collect(),
        segments: Vec::new(),
    };
    db.collection::<SiteConfigDoc>(c::SITE_CONFIG).insert_one(config).await?;

    println!(
        "bench_backfill: {} cores, load {}; server: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        if server.child.is_some() { "nx-27017 (started here)" } else { "MONGODB_URI" }
    );
    let setup = Instant::now();
    let live = flusher(&db, None);
    let mut site = Site::new(SITE, opts.seed);
    let mut other = Site::new(OTHER_SITE, opts.seed.wrapping_mul(7919).wrapping_add(13));
    let mut truth = Truth::default();
    let mut noise_truth = Truth::default();
    let (mut batches, mut events, mut bytes, mut sized, mut other_batches) = (0_i64, 0_i64, 0_usize, 0_i64, 0_i64);
    let raw = db.collection::<RawBatchDoc>(c::RAW_BATCHES);
    for d in 0..opts.days {
        let from = cut - (opts.days - d) * DAY;
        // Sessions start early enough that their last batch (at most 10 min later) is in the day.
        let to = from + DAY - 15 * 60_000;
        let mut day = site.sessions(opts.per_day.div_ceil(3), from, to, &mut truth);
        batches += day.len() as i64;
        events += day.iter().map(|m| m.events.len() as i64).sum::<i64>();
        let noise = other.sessions(opts.other_per_day.div_ceil(3), from, to, &mut noise_truth);
        other_batches += noise.len() as i64;
        day.extend(noise);
        day.sort_by_key(|m| m.received_at);
        if d >= opts.days - opts.live_days {
            // Sized as stored (the flush adds its own id where `raw_doc` puts "bench:0").
            for m in day.iter().filter(|m| m.site_id == SITE).take(100) {
                bytes += bson::to_vec(&raw_doc(m.clone()))?.len();
                sized += 1;
            }
            for chunk in day.chunks(FLUSH_BATCHES) {
                let (verdicts, _) = live.flush(chunk).await.map_err(|e| anyhow::anyhow!("live flush: {e}"))?;
                if verdicts.iter().any(|v| *v != Verdict::Ack) {
                    bail!("a live flush did not ack every batch");
                }
            }
        } else {
            let docs: Vec<RawBatchDoc> = day.into_iter().map(raw_doc).collect();
            for d in docs.iter().filter(|d| d.msg.site_id == SITE) {
                bytes += bson::to_vec(d)?.len();
                sized += 1;
            }
            for chunk in docs.chunks(1000) {
                raw.insert_many(chunk).await?;
            }
        }
    }
    println!(
        "data: {SITE} {} days x {} batches = {} batches, {} events ({:.1} a batch, {} bytes a batch as BSON); \
         {OTHER_SITE} {} batches; the last {} days through the aggregator's flush; written in {:.0} s",
        opts.days,
        opts.per_day,
        thousands(batches as f64),
        thousands(events as f64),
        events as f64 / batches as f64,
        if sized > 0 { thousands(bytes as f64 / sized as f64) } else { "?".into() },
        thousands(other_batches as f64),
        opts.live_days.min(opts.days),
        setup.elapsed().as_secs_f64()
    );
    println!(
        "backfill chunk: {} raw batches; sessions: {} in all, {} with a Signup",
        opts.chunk.unwrap_or(aggregator::flush::backfill::CHUNK_BATCHES),
        thousands(site.sessions as f64),
        thousands(truth.signups as f64)
    );
    // The publish margin after the cut must have passed before a job starts.
    let wait = cut + 11_000 - chrono::Utc::now().timestamp_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }

    let bench = Bench { flusher: flusher(&db, opts.chunk), db: db.clone(), cut, events, ticks, nx_pid: server.pid() };
    let phases = [Phase::Baseline, Phase::Goal, Phase::Funnel];
    let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    if opts.rounds > 0 {
        println!();
        println!(
            "{:<6} {:<16} {:>8} {:>12} {:>7} {:>17} {:>16} {:>13}",
            "round", "phase", "wall s", "events/s", "ratio", "our CPU ms/1k ev", "nx CPU ms/1k ev", "wall-CPU s"
        );
    }
    for round in 1..=opts.rounds {
        // Each round starts with another phase, so that a drift of the host's load does not
        // always fall on the same one.
        let mut order = phases;
        order.rotate_left((round - 1) % phases.len());
        let mut done = Vec::new();
        for phase in order {
            let perf = match (&opts.perf, round) {
                (Some(p), 1) if p == phase.key() => Some(Perf::start(&[std::process::id()], &opts.perf_out, true)?),
                _ => None,
            };
            let s = bench.run(phase, round).await?;
            if let Some(p) = perf {
                p.stop()?;
            }
            done.push((phase, s));
        }
        done.sort_by_key(|(p, _)| p.key());
        let base = done.iter().find(|(p, _)| matches!(p, Phase::Baseline)).map_or(1.0, |(_, s)| events as f64 / s.secs);
        for (phase, s) in done {
            let rate = events as f64 / s.secs;
            let per_k = |cpu: f64| cpu * 1e6 / events as f64;
            println!(
                "{:<6} {:<16} {:>8.2} {:>12} {:>7.2} {:>17.2} {:>16} {:>13}",
                round,
                phase.name(),
                s.secs,
                thousands(rate),
                rate / base,
                per_k(s.ours_cpu),
                s.nx_cpu.map_or("-".into(), |n| format!("{:.2}", per_k(n))),
                s.nx_cpu.map_or("-".into(), |n| format!("{:.2}", s.secs - s.ours_cpu - n)),
            );
            samples.entry(phase.name()).or_default().push(s);
        }
        let line = bench.check(round, &truth, opts.days).await?;
        println!("       check: {line}; load {}", loadavg());
    }

    if opts.rounds > 0 {
        summary(&samples, events, opts.rounds);
    }

    if opts.account {
        // The same three phases once more, on a client that counts every command.
        let mut options = ClientOptions::parse(&server.uri).await?;
        let ledger = monitor(&mut options);
        let mdb = mongodb::Client::with_options(options)?.database(&db_name);
        let counted = Bench { flusher: flusher(&mdb, opts.chunk), db: mdb, cut, events, ticks, nx_pid: server.pid() };
        let round = opts.rounds + 1;
        println!();
        println!("accounting round (command monitoring on: wall times include its copies, not comparable above)");
        for phase in phases {
            take(&ledger);
            let s = counted.run(phase, round).await?;
            let by = take(&ledger);
            let per_k = |n: u64| n as f64 * 1000.0 / events as f64;
            let written: u64 = by.values().map(|t| t.written).sum();
            let trips: u64 = by.values().map(|t| t.trips).sum();
            let returned: u64 = by.values().map(|t| t.returned).sum();
            let in_db: f64 = by.values().map(|t| t.time.as_secs_f64()).sum();
            println!(
                "  {}: {:.2} s, {} round trips, {:.1} documents read and {:.2} written per 1,000 events; \
                 {:.2} s waiting on the server, {:.2} s outside",
                phase.name(),
                s.secs,
                thousands(trips as f64),
                per_k(returned),
                per_k(written),
                in_db,
                (s.secs - in_db).max(0.0)
            );
            for ((cmd, coll), t) in &by {
                if t.trips == 0 || cmd == "ping" {
                    continue;
                }
                println!(
                    "      {:<14} {:<14} {:>6} trips {:>9} read {:>7} written {:>8.3} s",
                    cmd,
                    coll,
                    t.trips,
                    thousands(t.returned as f64),
                    thousands(t.written as f64),
                    t.time.as_secs_f64()
                );
            }
        }
        let line = counted.check(round, &truth, opts.days).await?;
        println!("      check: {line}");
    }
    if server.child.is_none() {
        db.drop().await?;
    }
    Ok(())
}
