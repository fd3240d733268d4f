//! Faults under load on the `make cluster` stack: with steady load through the balancer, one
//! NATS node (the event stream's leader), one ingest and one aggregator are SIGKILLed through
//! their pid files and come back; then two NATS nodes at once, so the stream loses its quorum.
//!
//! Asserted: every batch that got a 202 is counted exactly once; a 503 happens only while the
//! event stream has no leader (a NATS fault and the election after it); no 202 is given while
//! two of three nodes are down; the balancer marks a dead ingest down and sends it nothing
//! within 2 s. Reported: how long each fault disturbed the 202 rate (see docs/scaling.md).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::Api,
    cluster::Cluster,
    stack::Backlog,
    wait,
};

/// Batches per second each load worker aims at.
const WORKER_RATE: f64 = 25.0;
const WORKERS: usize = 8;
/// Seconds of steady load before and after each fault.
const STEADY: Duration = Duration::from_secs(4);

/// One attempt at posting a batch: when it started and ended (ms since the load began) and
/// the status (0: no HTTP answer).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    start_ms: u64,
    end_ms: u64,
    status: u16,
}

#[derive(Default)]
struct Record {
    attempts: Vec<Attempt>,
    accepted_batches: u64,
}

/// A fault and what was observed around it, in ms since the load began.
#[derive(Debug)]
struct Fault {
    name: &'static str,
    killed_at: u64,
    /// Until when a 503 is allowed: the stream had a leader again (NATS faults only).
    unavailable_until: Option<u64>,
}

fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// Steady load: each worker posts one batch at a time at its rate, and retries a refused
/// batch with the same body (same `batch_id`) until it gets a 202, as the tracker does.
fn start_load(
    api: Api,
    key: String,
    t0: Instant,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WORKERS)
        .map(|w| {
            let (api, key, stop, record) = (api.clone(), key.clone(), stop.clone(), record.clone());
            tokio::spawn(async move {
                let period = Duration::from_secs_f64(1.0 / WORKER_RATE);
                let mut next = tokio::time::Instant::now() + period.mul_f64(w as f64 / WORKERS as f64);
                while !stop.load(Ordering::Relaxed) {
                    // Pacing: the worker's rate, not a wait for a condition.
                    tokio::time::sleep_until(next).await;
                    next += period;
                    let page = id("page");
                    let url = "https://shop.example.com/pricing";
                    let body = serde_json::to_vec(&make_batch(
                        &key,
                        &id("session"),
                        vec![pageview(&page, url, "", true), click(&page, url, "button#buy", "Buy")],
                    ))
                    .expect("json");
                    let given_up = Instant::now() + Duration::from_secs(60);
                    loop {
                        let start_ms = ms_since(t0);
                        let res = api
                            .http
                            .post(format!("{}/api/events/batch", api.ingest))
                            .header("content-type", "text/plain")
                            .body(body.clone())
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
                        let attempt = Attempt { start_ms, end_ms: ms_since(t0), status };
                        {
                            let mut rec = record.lock().expect("record");
                            rec.attempts.push(attempt);
                            if status == 202 {
                                rec.accepted_batches += 1;
                            }
                        }
                        if status == 202 {
                            break;
                        }
                        assert!(Instant::now() < given_up, "a batch was refused for 60 s (last status {status})");
                        // Pacing: a refused batch is retried after a pause, as the tracker does.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

/// Lets the load run for `d` (the load tasks do the work; this only waits).
async fn steady(d: Duration) {
    // Pacing: a phase of load lasts `d` on purpose (its 202 rate is what is measured); there is
    // no condition to wait for.
    tokio::time::sleep(d).await;
}

/// How the 202 rate fared after a fault, in 250 ms bins from `killed_at` to `phase_end`: the
/// total time of the bins in which fewer than half the offered batches got their 202, and the
/// end of the last such bin (both in ms after the kill).
fn disturbance_ms(attempts: &[Attempt], killed_at: u64, phase_end: u64) -> (u64, u64) {
    const BIN: u64 = 250;
    let count =
        |from: u64, to: u64| attempts.iter().filter(|a| a.status == 202 && a.end_ms >= from && a.end_ms < to).count() as f64;
    let offered = WORKERS as f64 * WORKER_RATE * BIN as f64 / 1000.0;
    let (mut low_total, mut last_low_end) = (0, 0);
    let mut t = killed_at;
    while t + BIN <= phase_end {
        if count(t, t + BIN) < offered * 0.5 {
            low_total += BIN;
            last_low_end = t + BIN - killed_at;
        }
        t += BIN;
    }
    (low_total, last_low_end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_under_load_lose_nothing_and_count_nothing_twice() {
    let cluster = Cluster::start(&[
        ("CP_RATE_LIMIT_IP_PER_SEC", "100000"),
        ("CP_RATE_LIMIT_IP_BURST", "100000"),
        ("CP_ACK_WAIT_SECS", "4"),
        ("CP_FLUSH_INTERVAL_MS", "20"),
        // Long enough that "two of three NATS nodes down" lasts a few seconds.
        ("CP_CLUSTER_RESTART_DELAY", "5"),
    ])
    .await;
    let api = Api::at(&cluster.api_url(), &cluster.ingest_url());
    let tenant = api.tenant("shop.example.com", "UTC").await;

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(Record::default()));
    let load = start_load(api.clone(), tenant.key.clone(), t0, stop.clone(), record.clone());
    steady(STEADY).await;
    let mut faults: Vec<Fault> = Vec::new();
    let mut phase_ends: Vec<u64> = Vec::new();

    // 1. The NATS node that leads the event stream.
    let (leader, _) = cluster.stream_state("CP_EVENTS").await.expect("the event stream has a leader");
    let killed_at = ms_since(t0);
    let old = cluster.kill(&leader);
    let new_leader = wait::until("a new leader of the event stream", Duration::from_secs(30), || {
        let (cluster, leader) = (&cluster, leader.clone());
        async move { cluster.stream_state("CP_EVENTS").await.filter(|(l, _)| *l != leader).map(|(l, _)| l) }
    })
    .await;
    let leader_back = ms_since(t0);
    cluster.wait_restarted(&leader, old).await;
    wait::until("the restarted node to catch up", Duration::from_secs(60), || async {
        cluster.stream_state("CP_EVENTS").await.filter(|(_, current)| *current).map(|_| ())
    })
    .await;
    eprintln!("{leader} killed at {killed_at} ms; {new_leader} leads from {leader_back} ms");
    faults.push(Fault { name: "NATS node leading the stream (1 of 3)", killed_at, unavailable_until: Some(leader_back) });
    steady(STEADY).await;
    phase_ends.push(ms_since(t0));

    // 2. A NATS node that follows the event stream: the leader stays, so should the 202s.
    let (leader, _) = cluster.stream_state("CP_EVENTS").await.expect("the event stream has a leader");
    let follower = ["nats-1", "nats-2", "nats-3"].into_iter().find(|n| *n != leader).expect("a follower");
    let killed_at = ms_since(t0);
    let old = cluster.kill(follower);
    cluster.wait_restarted(follower, old).await;
    wait::until("the restarted follower to catch up", Duration::from_secs(60), || async {
        cluster.stream_state("CP_EVENTS").await.filter(|(_, current)| *current).map(|_| ())
    })
    .await;
    faults.push(Fault { name: "NATS node following the stream (1 of 3)", killed_at, unavailable_until: None });
    steady(STEADY).await;
    phase_ends.push(ms_since(t0));

    // 3. An ingest: the balancer must mark it down and stop sending to it within 2 s.
    let killed_at = ms_since(t0);
    let kill_instant = Instant::now();
    let old = cluster.kill("ingest-1");
    let marked_down = wait::until("the balancer to mark ingest-1 down", Duration::from_secs(5), || async {
        let servers = cluster.balancer_servers().await;
        servers.get("ingest-1").filter(|(status, _)| status.starts_with("DOWN")).map(|_| kill_instant.elapsed())
    })
    .await;
    assert!(marked_down <= Duration::from_secs(2), "ingest-1 marked down after {marked_down:?}");
    let sessions_when_down = cluster.balancer_servers().await["ingest-1"].1;
    let new_pid = cluster.wait_restarted("ingest-1", old).await;
    let sessions_at_restart = cluster.balancer_servers().await["ingest-1"].1;
    assert_eq!(
        sessions_at_restart, sessions_when_down,
        "the balancer sent requests to ingest-1 (pid {old}) after marking it down"
    );
    cluster.wait_ready("ingest-1").await;
    wait::until("the balancer to mark ingest-1 up", Duration::from_secs(10), || async {
        cluster.balancer_servers().await.get("ingest-1").filter(|(s, _)| s.starts_with("UP")).map(|_| ())
    })
    .await;
    eprintln!("ingest-1 killed at {killed_at} ms, marked down after {marked_down:?}, back as pid {new_pid}");
    faults.push(Fault { name: "ingest (1 of 2)", killed_at, unavailable_until: None });
    steady(STEADY).await;
    phase_ends.push(ms_since(t0));

    // 4. An aggregator, while it works through the load.
    let killed_at = ms_since(t0);
    let old = cluster.kill("aggregator-1");
    cluster.wait_restarted("aggregator-1", old).await;
    cluster.wait_ready("aggregator-1").await;
    faults.push(Fault { name: "aggregator (1 of 2)", killed_at, unavailable_until: None });
    steady(STEADY).await;
    phase_ends.push(ms_since(t0));

    // 5. Two NATS nodes at once: no quorum until one is back. No batch may get a 202 then.
    let killed_at = ms_since(t0);
    let (leader, _) = cluster.stream_state("CP_EVENTS").await.expect("the event stream has a leader");
    let others: Vec<String> =
        ["nats-1", "nats-2", "nats-3"].iter().filter(|n| **n != leader).map(|n| n.to_string()).collect();
    let old_a = cluster.kill(&others[0]);
    let old_b = cluster.kill(&others[1]);
    let first_back = wait::until("a killed node to be restarted", Duration::from_secs(30), || async {
        let a = cluster.pid(&others[0]).filter(|p| *p != old_a);
        let b = cluster.pid(&others[1]).filter(|p| *p != old_b);
        (a.is_some() || b.is_some()).then(|| ms_since(t0))
    })
    .await;
    cluster.wait_restarted(&others[0], old_a).await;
    cluster.wait_restarted(&others[1], old_b).await;
    wait::until("the event stream to have a leader again", Duration::from_secs(60), || async {
        cluster.stream_state("CP_EVENTS").await.map(|_| ())
    })
    .await;
    let quorum_back = ms_since(t0);
    // Two replicas replay what the stream took meanwhile; on two busy cores (the full suite runs
    // browsers beside this) that has taken over a minute.
    wait::until("the restarted nodes to catch up", Duration::from_secs(120), || async {
        cluster.stream_state("CP_EVENTS").await.filter(|(_, current)| *current).map(|_| ())
    })
    .await;
    faults.push(Fault { name: "two NATS nodes (quorum lost)", killed_at, unavailable_until: Some(quorum_back) });
    steady(STEADY).await;
    phase_ends.push(ms_since(t0));

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load worker");
    }
    let (accepted, attempts) = {
        let rec = record.lock().expect("record");
        (rec.accepted_batches as i64, rec.attempts.clone())
    };

    // No 202 answered while two of three nodes were down (a request may wait for the quorum
    // within ingest's publish timeout, and get its 202 once a node is back: that is stored).
    let quorum_fault = &faults[4];
    let no_quorum = (quorum_fault.killed_at + 500)..first_back;
    let accepted_without_quorum: Vec<&Attempt> =
        attempts.iter().filter(|a| a.status == 202 && no_quorum.contains(&a.end_ms)).collect();
    assert!(
        accepted_without_quorum.is_empty(),
        "202 while two NATS nodes were down ({no_quorum:?} ms): {accepted_without_quorum:?}"
    );
    assert!(attempts.iter().any(|a| a.status == 503 && no_quorum.contains(&a.end_ms)), "no 503 while the quorum was lost");

    // A 503 only while the stream had no leader: answered after a NATS kill, for a request
    // sent before the new leader was seen (plus the publish timeout of one waiting then).
    let allowed_503 = |a: &Attempt| {
        faults
            .iter()
            .any(|f| f.unavailable_until.is_some_and(|until| a.end_ms >= f.killed_at && a.start_ms <= until + 2_000))
    };
    let stray_503: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 503 && !allowed_503(a)).collect();
    assert!(stray_503.is_empty(), "503 outside a NATS fault: {stray_503:?}");

    // Every batch that got a 202 is counted exactly once.
    // After the quorum loss a pull request can be lost with its node; the aggregator pulls
    // again when it expires (a few seconds), then works through the backlog.
    let load_stopped = Instant::now();
    let seen = Arc::new(Mutex::new(serde_json::Value::Null));
    let s = wait::poll(Duration::from_secs(120), || {
        let (api, tenant, seen) = (&api, &tenant, seen.clone());
        async move {
            let s = api.stats(&tenant.token, &tenant.site_id, "timeframe=24h").await;
            *seen.lock().expect("seen") = s["summary"].clone();
            (s["summary"]["pageviews"].as_i64() >= Some(accepted)).then_some(s)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!("stats did not reach the {accepted} accepted batches within 120 s: {}", seen.lock().expect("seen"))
    });
    let caught_up = load_stopped.elapsed();
    // Drained, as JetStream counts it: the stream holds no message, so every copy of every
    // batch that reached it has been written and acked, and nothing is left to redeliver.
    wait::until("the aggregators to drain the stream", Duration::from_secs(60), || async {
        cluster.backlog().await.filter(Backlog::is_empty)
    })
    .await;
    let drained = api.stats(&tenant.token, &tenant.site_id, "timeframe=24h").await;
    assert_eq!(drained["summary"], s["summary"], "numbers changed while the stream drained");
    assert_eq!(s["summary"]["pageviews"], accepted, "pageviews: each accepted batch once: {}", s["summary"]);
    assert_eq!(s["summary"]["clicks"], accepted, "clicks: each accepted batch once: {}", s["summary"]);
    assert_eq!(s["summary"]["sessions"], accepted, "sessions: each accepted batch once: {}", s["summary"]);

    // What each fault cost, for docs/scaling.md.
    let total = attempts.len();
    let mut report = format!(
        "cluster fault run: {accepted} batches accepted, {total} attempts, {} x 503, {} x no answer, {} other; stats caught up {} ms after the load stopped\n",
        attempts.iter().filter(|a| a.status == 503).count(),
        attempts.iter().filter(|a| a.status == 0).count(),
        attempts.iter().filter(|a| !matches!(a.status, 0 | 202 | 503)).count(),
        caught_up.as_millis()
    );
    for (f, end) in faults.iter().zip(&phase_ends) {
        let window = |a: &&Attempt| a.start_ms >= f.killed_at && a.start_ms < *end;
        let refused: Vec<&Attempt> = attempts.iter().filter(window).filter(|a| a.status != 202).collect();
        let worst = attempts.iter().filter(window).map(|a| a.end_ms - a.start_ms).max().unwrap_or(0);
        let (low, last_low) = disturbance_ms(&attempts, f.killed_at, *end);
        report.push_str(&format!(
            "- {}: 202 rate below half for {low} ms in all, the last such 250 ms ending {last_low} ms after the kill; {} refused attempts ({} x 503); slowest answer {} ms\n",
            f.name,
            refused.len(),
            refused.iter().filter(|a| a.status == 503).count(),
            worst
        ));
        let per_second: Vec<String> = (f.killed_at / 1000..end / 1000)
            .map(|sec| attempts.iter().filter(|a| a.status == 202 && a.end_ms / 1000 == sec).count().to_string())
            .collect();
        report.push_str(&format!("  202s per second from the kill on: {}\n", per_second.join(" ")));
    }
    eprintln!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("cluster-faults.txt"), report);
}
