//! Publishing enriched batches to the event stream, and waiting for the stream's ack.
//!
//! The batches of one site key travel in a [`Lane`] (group commit; one lane per key and ingest
//! process). While fewer than `CP_PUBLISH_IN_FLIGHT` ([`DEFAULT_IN_FLIGHT`]) publishes of the
//! lane wait for their ack, a batch is published at once, on its own: at low load nothing waits
//! for anything. Once that many are in flight, batches queue, and as each publish is acked the
//! queue leaves (after the scheduler turns that still bring batches, at most four: requests
//! already read join rather than wait a whole ack) as one stream message of up to
//! `CP_PUBLISH_GROUP_MAX` ([`DEFAULT_GROUP_MAX`]) batches and [`MAX_GROUP_BYTES`],
//! newline-separated (see [`shared::message::split_batches`]).
//! The stream then stores, de-duplicates and acks one message for the whole group: under load
//! that is most of what each batch costs NATS and ingest. Every batch of the group is answered
//! 202 by that one ack, so "202 only once the stream has it" holds batch by batch; when the
//! stream refuses the message because the site holds its whole share of it
//! ([`shared::site_share`]), every batch of the group gets [`PublishFailure::SiteShareFull`].
//!
//! The stream is JetStream over the NATS connection, or, for tests of the HTTP surface without
//! NATS, a [`MemoryStream`]: everything above the stream (lanes, groups, deadlines) is the same.

pub mod memory;

pub use memory::MemoryStream;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap, Subject,
    header::NATS_MESSAGE_ID,
    jetstream::{self, context::PublishErrorKind},
};
use bytes::Bytes;
use tokio::{sync::oneshot, time::Instant};

/// Pause between two attempts at the same message.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for one attempt's ack. An ack takes milliseconds (p99 26 ms on a busy 2-core
/// cluster); one that has not come by now was most likely sent on a connection that died with
/// its NATS node, and will never come: send the message again on the new connection.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// Publishes of one lane awaiting their ack before batches start to queue, by default. One
/// measured best with `make bench-wrk` (docs/benchmarks.md): a batch waits at most one ack
/// (about a millisecond) before its own publish, and under load groups are half again as large
/// as with two, which is what each batch costs NATS.
pub const DEFAULT_IN_FLIGHT: usize = 1;
/// Most batches in one stream message, by default (`CP_PUBLISH_GROUP_MAX`; 1 turns grouping
/// off). The byte limit below is what usually ends a group: ≈ 120 batches of 1.6 KB.
pub const DEFAULT_GROUP_MAX: usize = 256;
/// Most bytes in one stream message: under the stream's own limit
/// ([`shared::bus::MAX_MESSAGE_BYTES`]) with room for the headers.
pub const MAX_GROUP_BYTES: usize = shared::bus::MAX_MESSAGE_BYTES - 64 * 1024;
const _: () = assert!(MAX_GROUP_BYTES >= shared::event::MAX_BODY * 2, "a group holds at least two of the largest batches");
/// Most turns of the scheduler a group waits for batches still arriving (it stops at the first
/// turn that brings none).
const MAX_GATHER_TURNS: usize = 4;
/// Most batches, and bytes, queued on one lane; past either a batch is answered 503 at once.
const MAX_QUEUED: usize = 8 * 1024;
const MAX_QUEUED_BYTES: usize = 32 * 1024 * 1024;

/// Why a batch did not make it into the stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishFailure {
    #[error("no ack from the stream within {0:?}")]
    Timeout(Duration),
    #[error("stream refused the batch: {0}")]
    Refused(String),
    #[error("{0} batches are already waiting for the stream")]
    Backlog(usize),
    /// The stream holds the site's whole share ([`shared::site_share`]); only this site's
    /// messages are refused, and only until the aggregator acks some of them.
    #[error("the site holds its whole share of the event stream")]
    SiteShareFull,
}

impl PublishFailure {
    /// The failure a refused publish ack stands for.
    pub fn from_ack_error(error: &jetstream::context::PublishError) -> Self {
        let server = std::error::Error::source(error).and_then(|source| source.downcast_ref::<jetstream::Error>());
        if server.is_some_and(shared::site_share::is_refusal) {
            Self::SiteShareFull
        } else {
            Self::Refused(error.to_string())
        }
    }
}

/// The group commit of one subject (one site).
pub struct Lane {
    subject: Subject,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    in_flight: usize,
    queue: VecDeque<Waiting>,
    queued_bytes: usize,
}

/// Where [`Publisher::place`] put a batch.
enum Place {
    /// In flight: publish it now.
    Now(String, Bytes),
    /// Queued: the result comes with its group's ack.
    Queued(oneshot::Receiver<Result<(), PublishFailure>>),
}

struct Waiting {
    msg_id: String,
    payload: Bytes,
    deadline: Instant,
    done: oneshot::Sender<Result<(), PublishFailure>>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Lane {
    pub fn new(subject: Subject) -> Arc<Self> {
        Arc::new(Self { subject, state: Mutex::new(LaneState::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the batches at the front of the queue whose requests are no longer waiting: they
    /// were answered 503 (or went away), and the tracker sends them again. Caller holds the lock.
    fn purge_front(state: &mut LaneState, now: Instant) {
        while let Some(next) = state.queue.front() {
            if !(next.done.is_closed() || next.deadline <= now) {
                break;
            }
            let gone = state.queue.pop_front().expect("front exists");
            state.queued_bytes -= gone.payload.len();
        }
    }

    /// Takes the next group off the queue: the oldest batches whose sender still waits, at most
    /// `max` of them and [`MAX_GROUP_BYTES`] (one always goes). Caller holds the lock.
    fn take_group(state: &mut LaneState, max: usize) -> Vec<Waiting> {
        let mut group = Vec::new();
        Self::fill_group(state, &mut group, max);
        group
    }

    /// Adds the queue's next batches to `group` within the same limits; returns how many.
    /// Caller holds the lock.
    fn fill_group(state: &mut LaneState, group: &mut Vec<Waiting>, max: usize) -> usize {
        let now = Instant::now();
        let before = group.len();
        let mut bytes: usize = group.iter().map(|w| w.payload.len() + 1).sum();
        loop {
            Self::purge_front(state, now);
            let Some(next) = state.queue.front() else { break };
            if group.len() >= max.max(1) || (!group.is_empty() && bytes + next.payload.len() + 1 > MAX_GROUP_BYTES) {
                break;
            }
            let next = state.queue.pop_front().expect("front exists");
            state.queued_bytes -= next.payload.len();
            bytes += next.payload.len() + 1;
            group.push(next);
        }
        group.len() - before
    }
}

/// One of a lane's in-flight places. Dropping it (when its publish is done, or when the request
/// that held it went away) hands the place to the queue's next group.
struct Slot {
    lane: Arc<Lane>,
    publisher: Publisher,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let group = {
            let mut state = self.lane.lock();
            let group = Lane::take_group(&mut state, self.publisher.group_max);
            if group.is_empty() {
                state.in_flight -= 1;
            }
            group
        };
        if !group.is_empty() {
            // The place passes to the group without being given back in between.
            let slot = Slot { lane: self.lane.clone(), publisher: self.publisher.clone() };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(slot.gather_and_publish(group));
                }
                Err(_) => drop(group), // the runtime is shutting down: the senders see a 503
            }
        }
    }
}

impl Slot {
    /// Publishes `group` once the scheduler turns that still bring batches of the lane have
    /// added them (at most [`MAX_GATHER_TURNS`]): requests already read join this message
    /// rather than wait for its ack. With wrk on 64 connections a message carried 30 batches
    /// instead of 18, and nats-server spent a third less CPU per batch.
    async fn gather_and_publish(self, mut group: Vec<Waiting>) {
        for _ in 0..MAX_GATHER_TURNS {
            if group.len() >= self.publisher.group_max {
                break;
            }
            tokio::task::yield_now().await;
            if Lane::fill_group(&mut self.lane.lock(), &mut group, self.publisher.group_max) == 0 {
                break;
            }
        }
        self.publish_group(group).await;
    }

    async fn publish_group(self, group: Vec<Waiting>) {
        let deadline = group.iter().map(|w| w.deadline).max().unwrap_or_else(Instant::now);
        let result = if let [only] = group.as_slice() {
            self.publisher.publish(self.lane.subject.clone(), &only.msg_id, only.payload.clone(), None, deadline).await
        } else {
            let msg_id = self.publisher.group_id();
            let packed = Bytes::from(shared::message::encode_group(group.iter().map(|w| &w.payload[..])));
            self.publisher.publish(self.lane.subject.clone(), &msg_id, packed, Some(group.len()), deadline).await
        };
        self.publisher.groups.observe(group.len() as f64);
        for w in group {
            let _ = w.done.send(result.clone());
        }
    }
}

/// Where published messages go.
#[derive(Clone)]
enum Transport {
    /// The event stream, over the NATS connection; shared, since a publisher is cloned for
    /// every publish.
    Stream(Arc<Nats>),
    /// A stream in memory (tests).
    Memory(MemoryStream),
}

struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
}

/// Publishes batches with a deadline on the ack.
#[derive(Clone)]
pub struct Publisher {
    transport: Transport,
    timeout: Duration,
    /// Publishes of one lane awaiting their ack before its batches queue.
    in_flight: usize,
    /// Most batches in one stream message.
    group_max: usize,
    /// Prefix of group message ids, unique to this process.
    instance: Arc<str>,
    next_group: Arc<AtomicU64>,
    /// Batches per stream message.
    groups: prometheus::Histogram,
}

impl Publisher {
    /// Publishes to the event stream over `client`.
    pub fn new(
        client: async_nats::Client,
        timeout: Duration,
        in_flight: usize,
        group_max: usize,
        groups: prometheus::Histogram,
    ) -> Self {
        let transport = Transport::Stream(Arc::new(Nats { js: jetstream::new(client.clone()), client }));
        Self::with_transport(transport, timeout, in_flight, group_max, groups)
    }

    /// Publishes to `stream`, in memory, with the same lanes and groups as [`Publisher::new`].
    pub fn in_memory(
        stream: MemoryStream,
        timeout: Duration,
        in_flight: usize,
        group_max: usize,
        groups: prometheus::Histogram,
    ) -> Self {
        Self::with_transport(Transport::Memory(stream), timeout, in_flight, group_max, groups)
    }

    fn with_transport(
        transport: Transport,
        timeout: Duration,
        in_flight: usize,
        group_max: usize,
        groups: prometheus::Histogram,
    ) -> Self {
        let instance: String = {
            // Group ids must never repeat within the stream's de-duplication window, or a group
            // would be acked as a duplicate without being stored: no fallback to a fixed prefix.
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the operating system's random source");
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        };
        Self {
            transport,
            timeout,
            in_flight: in_flight.max(1),
            group_max: group_max.max(1),
            instance: instance.into(),
            next_group: Arc::new(AtomicU64::new(1)),
            groups,
        }
    }

    /// True while the stream can be reached: the NATS connection is up (a stream in memory
    /// says what its test told it).
    pub fn is_connected(&self) -> bool {
        match &self.transport {
            Transport::Stream(nats) => nats.client.connection_state() == async_nats::connection::State::Connected,
            Transport::Memory(stream) => stream.is_connected(),
        }
    }

    /// A `Nats-Msg-Id` for a group message: unique to the group, the same for each attempt.
    /// (A batch sent again by its tracker may land in another group; the aggregator stores a
    /// batch once by its own id whatever message carries it.)
    fn group_id(&self) -> String {
        format!("g:{}:{}", self.instance, self.next_group.fetch_add(1, Ordering::Relaxed))
    }

    /// Puts one encoded [`shared::message::BatchMessage`] (`msg_id` is its
    /// [`shared::message::raw_batch_id`]) into the stream through `lane`, and returns once the
    /// stream acked the message that carries it, or with the reason it did not within the
    /// publish timeout.
    pub async fn submit(&self, lane: &Arc<Lane>, msg_id: String, payload: Bytes) -> Result<(), PublishFailure> {
        let deadline = Instant::now() + self.timeout;
        match self.place(lane, msg_id, payload, deadline)? {
            Place::Now(msg_id, payload) => {
                let _slot = Slot { lane: lane.clone(), publisher: self.clone() };
                self.groups.observe(1.0);
                self.publish(lane.subject.clone(), &msg_id, payload, None, deadline).await
            }
            Place::Queued(rx) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(PublishFailure::Refused("ingest is stopping".to_string())),
                Err(_) => Err(PublishFailure::Timeout(self.timeout)),
            },
        }
    }

    /// Takes one of the lane's in-flight places if one is free and nothing queues, or queues.
    fn place(&self, lane: &Lane, msg_id: String, payload: Bytes, deadline: Instant) -> Result<Place, PublishFailure> {
        let mut state = lane.lock();
        if state.in_flight < self.in_flight && state.queue.is_empty() {
            state.in_flight += 1;
            return Ok(Place::Now(msg_id, payload));
        }
        Lane::purge_front(&mut state, Instant::now());
        if state.queue.len() >= MAX_QUEUED || state.queued_bytes + payload.len() > MAX_QUEUED_BYTES {
            return Err(PublishFailure::Backlog(state.queue.len()));
        }
        let (done, rx) = oneshot::channel();
        state.queued_bytes += payload.len();
        state.queue.push_back(Waiting { msg_id, payload, deadline, done });
        Ok(Place::Queued(rx))
    }

    /// Publishes `payload` on `subject` and returns once the stream acked it. `msg_id` (the
    /// `Nats-Msg-Id`) makes a retried message stored once; a duplicate ack is still a success.
    /// `grouped` is the batch count when `payload` is an encoded group
    /// ([`shared::message::encode_group`]); it sets the headers a consumer reads it by.
    ///
    /// Until `deadline`, a failed attempt, or one without an ack after [`ATTEMPT_TIMEOUT`],
    /// is tried again: in a cluster the client reconnects to another node within milliseconds
    /// of losing one, and a stream whose leader died has a new one within a few seconds.
    /// Sending the same `Nats-Msg-Id` again is what makes that safe: an attempt whose ack was
    /// lost is stored once, and the retry gets the duplicate ack.
    async fn publish(
        &self,
        subject: Subject,
        msg_id: &str,
        payload: Bytes,
        grouped: Option<usize>,
        deadline: Instant,
    ) -> Result<(), PublishFailure> {
        let Nats { client, js } = match &self.transport {
            Transport::Stream(nats) => nats.as_ref(),
            // One attempt: a stream in memory has no connection to lose and no leader to elect.
            Transport::Memory(stream) => return stream.publish(&subject, msg_id, &payload, grouped),
        };
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        if let Some(batches) = grouped {
            // An encoded group (`shared::message::encode_group`) and how many batches it holds.
            headers.insert(shared::message::ENCODING_HEADER, shared::message::LZ4);
            headers.insert(shared::message::BATCHES_HEADER, batches.to_string().as_str());
        }
        loop {
            // While disconnected the client would buffer the publish and send it after
            // reconnecting, whenever that is: wait for the connection instead, and answer 503
            // at the deadline so the tracker retries the same batch.
            let last = if client.connection_state() == async_nats::connection::State::Connected {
                let attempt = async {
                    let ack = js
                        .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                        .await
                        .map_err(|e| PublishFailure::Refused(e.to_string()))?;
                    ack.await.map_err(|e| match e.kind() {
                        PublishErrorKind::TimedOut => PublishFailure::Timeout(self.timeout),
                        _ => PublishFailure::from_ack_error(&e),
                    })
                };
                let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
                match tokio::time::timeout_at(attempt_deadline, attempt).await {
                    Ok(Ok(_ack)) => return Ok(()),
                    // Final: the next attempt would find the same count unless the aggregator
                    // happened to ack in between, and the tracker's retry covers that.
                    Ok(Err(PublishFailure::SiteShareFull)) => return Err(PublishFailure::SiteShareFull),
                    Ok(Err(e)) => e,
                    Err(_) if attempt_deadline < deadline => continue,
                    Err(_) => return Err(PublishFailure::Timeout(self.timeout)),
                }
            } else {
                PublishFailure::Refused("not connected to NATS".to_string())
            };
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(last);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(state: &mut LaneState, bytes: usize, deadline: Instant) -> oneshot::Receiver<Result<(), PublishFailure>> {
        let (done, rx) = oneshot::channel();
        state.queued_bytes += bytes;
        state.queue.push_back(Waiting {
            msg_id: format!("s:b{}", state.queue.len()),
            payload: Bytes::from(vec![b'x'; bytes]),
            deadline,
            done,
        });
        rx
    }

    #[tokio::test]
    async fn a_group_takes_the_oldest_live_batches_within_its_limits() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut state = LaneState::default();
        let mut keep = Vec::new();
        for _ in 0..DEFAULT_GROUP_MAX + 10 {
            keep.push(waiting(&mut state, 100, later));
        }
        let group = Lane::take_group(&mut state, DEFAULT_GROUP_MAX);
        assert_eq!(group.len(), DEFAULT_GROUP_MAX);
        assert_eq!(group[0].msg_id, "s:b0", "oldest first");
        assert_eq!((state.queue.len(), state.queued_bytes), (10, 1000));
        assert_eq!(Lane::take_group(&mut state, 1).len(), 1, "a maximum of 1 turns grouping off");
        assert_eq!(Lane::take_group(&mut state, DEFAULT_GROUP_MAX).len(), 9);
        assert_eq!((state.queue.len(), state.queued_bytes), (0, 0));
    }

    #[tokio::test]
    async fn a_group_stays_under_the_byte_limit_but_always_takes_one() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut state = LaneState::default();
        let _a = waiting(&mut state, MAX_GROUP_BYTES / 2, later);
        let _b = waiting(&mut state, MAX_GROUP_BYTES / 2, later);
        let _c = waiting(&mut state, MAX_GROUP_BYTES + 1, later);
        assert_eq!(Lane::take_group(&mut state, DEFAULT_GROUP_MAX).len(), 1, "two halves and a separator do not fit");
        assert_eq!(Lane::take_group(&mut state, DEFAULT_GROUP_MAX).len(), 1);
        assert_eq!(Lane::take_group(&mut state, DEFAULT_GROUP_MAX).len(), 1, "an oversized batch goes alone");
        assert!(Lane::take_group(&mut state, DEFAULT_GROUP_MAX).is_empty());
    }

    #[tokio::test]
    async fn a_group_is_topped_up_within_the_same_limits() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut state = LaneState::default();
        let _first = waiting(&mut state, 100, later);
        let mut group = Lane::take_group(&mut state, 3);
        assert_eq!(Lane::fill_group(&mut state, &mut group, 3), 0, "nothing arrived");
        let _more: Vec<_> = (0..3).map(|_| waiting(&mut state, 100, later)).collect();
        assert_eq!(Lane::fill_group(&mut state, &mut group, 3), 2, "up to the batch limit");
        assert_eq!((group.len(), state.queue.len(), state.queued_bytes), (3, 1, 100));
        let mut state = LaneState::default();
        let _big = waiting(&mut state, MAX_GROUP_BYTES / 2, later);
        let mut group = Lane::take_group(&mut state, DEFAULT_GROUP_MAX);
        let _other = waiting(&mut state, MAX_GROUP_BYTES / 2, later);
        assert_eq!(
            Lane::fill_group(&mut state, &mut group, DEFAULT_GROUP_MAX),
            0,
            "the byte limit counts what the group holds"
        );
    }

    #[tokio::test]
    async fn answered_and_expired_batches_leave_the_queue_unpublished() {
        let mut state = LaneState::default();
        let gone = waiting(&mut state, 10, Instant::now() + Duration::from_secs(5));
        drop(gone);
        let _expired = waiting(&mut state, 10, Instant::now() - Duration::from_millis(1));
        let _live = waiting(&mut state, 10, Instant::now() + Duration::from_secs(5));
        let group = Lane::take_group(&mut state, DEFAULT_GROUP_MAX);
        assert_eq!(group.iter().map(|w| w.msg_id.as_str()).collect::<Vec<_>>(), ["s:b2"]);
        assert_eq!((state.queue.len(), state.queued_bytes), (0, 0));
    }

    #[test]
    fn a_refused_ack_is_the_site_over_its_share_only_when_the_stream_says_per_subject() {
        use async_nats::jetstream::context::PublishError;
        let server = |json: &str| serde_json::from_str::<jetstream::Error>(json).expect("a JetStream API error");
        let per_subject = r#"{"code":503,"err_code":10077,"description":"maximum messages per subject exceeded"}"#;
        let stream_full = r#"{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}"#;
        let cases = [
            ("per-subject limit", PublishError::with_source(PublishErrorKind::Other, server(per_subject)), true),
            ("stream full", PublishError::with_source(PublishErrorKind::Other, server(stream_full)), false),
            ("no stream", PublishError::new(PublishErrorKind::StreamNotFound), false),
            ("connection lost", PublishError::new(PublishErrorKind::BrokenPipe), false),
        ];
        for (case, error, share) in cases {
            let failure = PublishFailure::from_ack_error(&error);
            assert_eq!(matches!(failure, PublishFailure::SiteShareFull), share, "case {case}: {failure:?}");
            if !share {
                assert!(matches!(failure, PublishFailure::Refused(_)), "case {case}: {failure:?}");
            }
        }
    }

    #[tokio::test]
    async fn batches_no_one_waits_for_do_not_count_against_the_queue_limit() {
        let mut state = LaneState::default();
        for _ in 0..3 {
            drop(waiting(&mut state, 10, Instant::now() + Duration::from_secs(5)));
        }
        let _live = waiting(&mut state, 10, Instant::now() + Duration::from_secs(5));
        Lane::purge_front(&mut state, Instant::now());
        assert_eq!((state.queue.len(), state.queued_bytes), (1, 10));
    }
}
