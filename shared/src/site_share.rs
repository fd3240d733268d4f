//! Each site's share of the event stream, enforced by the stream itself.
//!
//! A batch is published on its site's own subject (`cp.events.<site_id>`,
//! [`crate::names::event_subject`]), so JetStream's per-subject limit is a per-site limit:
//! the event stream holds at most [`StreamLimits::max_msgs_per_site`] messages of one site
//! (`max_msgs_per_subject`), and with `discard_new_per_subject` it refuses that site's next
//! message rather than dropping an older one (nats-server 2.9 or later). Ingest answers that
//! refusal 429 for the batches of the refused message only ([`is_refusal`]); every other site
//! still has the rest of the stream. Because the stream counts, the share holds whatever the
//! number of ingest processes: they all publish into the same count.
//!
//! A site's messages leave the stream when the aggregator acks them (work-queue retention), so
//! the share is the site's backlog: while the aggregator keeps up it is never reached.
//!
//! The cap reaches an existing stream through [`ensure`] (ingest calls it at start), which
//! changes only these two settings. Raising the cap is always safe. Lowering it, or setting it on
//! a stream that had none, is not: the server then deletes the oldest messages of every subject
//! above the new cap (at once, or when it next recovers the stream from disk), and those are
//! batches that were answered 202. So that step waits until no site holds more than half the new
//! cap; the half is the margin for publishes that land between the count and the update (one
//! round trip, in which an ingest sends at most `CP_PUBLISH_IN_FLIGHT` messages of a site).

use anyhow::Context as _;
use async_nats::jetstream::{self, Context, stream};
use futures::TryStreamExt as _;

use crate::{bus::StreamLimits, names};

/// The text nats-server 2.9 and 2.10 give, with error code 10077 (`stream store failed`), when a
/// subject holds its `max_msgs_per_subject` and `discard_new_per_subject` is set. The stream
/// being full as a whole has the same error code and `maximum bytes exceeded`.
const PER_SUBJECT_REFUSAL: &str = "maximum messages per subject exceeded";

/// True when the stream refused a publish because the message's site holds its whole share.
pub fn is_refusal(error: &jetstream::Error) -> bool {
    error.error_code() == jetstream::ErrorCode::STREAM_STORE_FAILED && error.to_string().contains(PER_SUBJECT_REFUSAL)
}

/// What a stream's config needs so that it enforces `cap` messages per site.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// It enforces `cap` already.
    Keep,
    /// Safe at any time: the cap goes up, or only the refusal of new messages is switched on.
    Raise(stream::Config),
    /// Lowers the cap or sets the first one: safe only while no site holds more than `cap`.
    Lower(stream::Config),
}

/// The change of `current` (everything else kept as it is) that makes it enforce `cap`.
pub fn plan(current: &stream::Config, cap: i64) -> Plan {
    if current.max_messages_per_subject == cap && current.discard_new_per_subject {
        return Plan::Keep;
    }
    let mut wanted = current.clone();
    wanted.max_messages_per_subject = cap;
    wanted.discard_new_per_subject = true;
    // The per-subject refusal requires the stream's own discard policy to be `new`; ours is.
    wanted.discard = stream::DiscardPolicy::New;
    let old = current.max_messages_per_subject;
    if old > 0 && cap >= old { Plan::Raise(wanted) } else { Plan::Lower(wanted) }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stream enforced the configured share already.
    Unchanged,
    /// The stream enforces it now; `from` is the cap it had (-1: none).
    Applied { from: i64 },
    /// Not yet: lowering the cap now would delete accepted batches of a site that holds more
    /// than half of it (`held` messages, or more). Try again once the aggregator caught up.
    Deferred { held: u64 },
}

/// Makes the existing event stream enforce `limits.max_msgs_per_site` messages per site,
/// changing nothing else, when that can delete no stored message (see the module doc).
pub async fn ensure(js: &Context, limits: &StreamLimits) -> anyhow::Result<Outcome> {
    let cap = limits.max_msgs_per_site;
    let mut stream = js.get_stream(names::STREAM).await.with_context(|| format!("reading stream {}", names::STREAM))?;
    let info = stream.info().await.with_context(|| format!("reading stream {}", names::STREAM))?.clone();
    let from = info.config.max_messages_per_subject;
    let wanted = match plan(&info.config, cap) {
        Plan::Keep => return Ok(Outcome::Unchanged),
        Plan::Raise(wanted) => wanted,
        Plan::Lower(wanted) => {
            let margin = u64::try_from(cap / 2).unwrap_or(0);
            if let Some(held) = site_holding_more_than(&stream, info.state.messages, margin).await? {
                return Ok(Outcome::Deferred { held });
            }
            wanted
        }
    };
    js.update_stream(&wanted).await.with_context(|| {
        format!(
            "updating stream {} to {cap} messages per site (ingest's NATS user needs $JS.API.STREAM.UPDATE.{})",
            names::STREAM,
            names::STREAM
        )
    })?;
    Ok(Outcome::Applied { from })
}

/// The message count of a site holding more than `margin` messages, if one does. `total` (the
/// stream's message count) answers without a listing when the whole stream is that small.
async fn site_holding_more_than(stream: &stream::Stream, total: u64, margin: u64) -> anyhow::Result<Option<u64>> {
    if total <= margin {
        return Ok(None);
    }
    // Pages of up to 100,000 subjects; stops at the first site over the margin.
    let mut subjects = stream.info_with_subjects(names::SUBJECTS).await.context("listing the stream's subjects")?;
    while let Some((_, held)) = subjects.try_next().await.context("listing the stream's subjects")? {
        if held as u64 > margin {
            return Ok(Some(held as u64));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cap: i64, discard_new_per_subject: bool) -> stream::Config {
        stream::Config {
            name: names::STREAM.to_string(),
            subjects: vec![names::SUBJECTS.to_string()],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_bytes: 1 << 30,
            num_replicas: 3,
            max_messages_per_subject: cap,
            discard_new_per_subject,
            ..Default::default()
        }
    }

    #[test]
    fn a_plan_changes_only_the_share_and_lowers_only_with_care() {
        let cases = [
            ("the same cap and refusal", config(1024, true), 1024, "keep"),
            ("no cap yet (-1, as the server reports it)", config(-1, false), 1024, "lower"),
            ("no cap yet (0)", config(0, false), 1024, "lower"),
            ("a lower cap", config(2048, true), 1024, "lower"),
            ("a higher cap", config(512, true), 1024, "raise"),
            ("the cap without the refusal", config(1024, false), 1024, "raise"),
        ];
        for (case, current, cap, want) in cases {
            let (got, wanted) = match plan(&current, cap) {
                Plan::Keep => ("keep", None),
                Plan::Raise(c) => ("raise", Some(c)),
                Plan::Lower(c) => ("lower", Some(c)),
            };
            assert_eq!(got, want, "case {case}");
            if let Some(wanted) = wanted {
                let mut expected = current.clone();
                expected.max_messages_per_subject = cap;
                expected.discard_new_per_subject = true;
                assert_eq!(wanted, expected, "case {case}: only the share changes");
            }
        }
    }

    fn server_error(json: &str) -> jetstream::Error {
        serde_json::from_str(json).expect("a JetStream API error")
    }

    #[test]
    fn only_the_per_subject_refusal_is_a_site_over_its_share() {
        let cases = [
            (
                r#"{"code":503,"err_code":10077,"description":"maximum messages per subject exceeded"}"#,
                true,
                "per-subject limit",
            ),
            (r#"{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}"#, false, "stream full"),
            (r#"{"code":503,"err_code":10077,"description":"maximum messages exceeded"}"#, false, "stream's message limit"),
            (r#"{"code":503,"err_code":10077,"description":"insufficient resources"}"#, false, "disk full"),
            (
                r#"{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}"#,
                false,
                "message too large",
            ),
            (
                r#"{"code":503,"err_code":10008,"description":"maximum messages per subject exceeded"}"#,
                false,
                "another error code",
            ),
        ];
        for (json, want, case) in cases {
            assert_eq!(is_refusal(&server_error(json)), want, "case {case}");
        }
    }
}
