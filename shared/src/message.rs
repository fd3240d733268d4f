//! The enriched batch ingest publishes on the event stream and the aggregator consumes.
//!
//! The aggregator reads [`BatchMessage`] (owned). Ingest writes [`BatchMessageRef`], which
//! borrows the request body and serializes to the same JSON, so publishing copies no string
//! into an intermediate value.
//!
//! One stream message carries one batch or, when ingest groups the batches of a site that
//! arrive together (group commit, `ingest/src/publisher.rs`), several: their JSON objects one
//! per line. Compact JSON never holds a raw newline (inside strings it is escaped), so the
//! newline is an unambiguous separator, and a one-batch message is exactly the object it was
//! before grouping. Read a message with [`split_batches`].

use serde::{Deserialize, Serialize};

use crate::{
    audience::{Browser, Country, Device, Os},
    event::{Event, EventRef},
    ids::BatchId,
};

/// One accepted tracker batch plus what ingest knows and the client does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchMessage {
    pub site_id: String,
    pub batch_id: BatchId,
    pub session_id: String,
    /// Server receive time, ms since the epoch: what the batch is bucketed by.
    pub received_at: i64,
    /// Cookie-free visitor hash (see [`crate::visitor`]).
    pub visitor: String,
    /// The site's IANA time zone at receive time.
    pub timezone: String,
    /// The site's domain at receive time, for telling direct traffic from referrals.
    pub domain: String,
    /// Device class from the User-Agent (v2; `desktop` in messages written before it).
    #[serde(default)]
    pub device: Device,
    /// Browser family from the User-Agent (v2; `Other` before).
    #[serde(default)]
    pub browser: Browser,
    /// Operating system family from the User-Agent (v2; `Other` before).
    #[serde(default)]
    pub os: Os,
    /// Country of the client IP (v2; `(unknown)` before, or when the database does not know).
    #[serde(default)]
    pub country: Country,
    /// The site's currency at receive time: that of revenue that names none (v3; `USD` in
    /// messages written before).
    #[serde(default = "crate::money::default_currency")]
    pub currency: String,
    pub events: Vec<Event>,
}

impl BatchMessage {
    /// The JetStream message id: a retry of the same batch is stored once.
    pub fn msg_id(&self) -> String {
        raw_batch_id(&self.site_id, self.batch_id.as_str())
    }
}

/// What ingest publishes: a [`BatchMessage`] borrowing the request body and the site entry.
#[derive(Debug, Clone, Serialize)]
pub struct BatchMessageRef<'a> {
    pub site_id: &'a str,
    pub batch_id: &'a str,
    pub session_id: &'a str,
    pub received_at: i64,
    pub visitor: &'a str,
    pub timezone: &'a str,
    pub domain: &'a str,
    pub device: Device,
    pub browser: Browser,
    pub os: Os,
    pub country: Country,
    pub currency: &'a str,
    pub events: &'a [EventRef<'a>],
}

impl BatchMessageRef<'_> {
    /// The JetStream message id: a retry of the same batch is stored once.
    pub fn msg_id(&self) -> String {
        raw_batch_id(self.site_id, self.batch_id)
    }
}

/// The id shared by the stream's `Nats-Msg-Id` and the raw batch document's `_id`.
pub fn raw_batch_id(site_id: &str, batch_id: &str) -> String {
    let mut id = String::with_capacity(site_id.len() + 1 + batch_id.len());
    id.push_str(site_id);
    id.push(':');
    id.push_str(batch_id);
    id
}

/// The header that says a stream message's payload is compressed, and the one encoding there is.
/// Ingest compresses grouped messages (their batches share a site, URLs and User-Agents, so
/// LZ4 takes them to a fraction): the stream then stores, replicates and hands over far fewer
/// bytes, which is most of what it spends per batch. A one-batch message is never compressed.
pub const ENCODING_HEADER: &str = "CP-Encoding";
/// The header with the number of batches in a grouped message, so a consumer can size its
/// chunks without decompressing.
pub const BATCHES_HEADER: &str = "CP-Batches";
pub const LZ4: &str = "lz4";
/// Largest payload a compressed message may claim to expand to (a group is at most 192 KiB).
pub const MAX_DECODED_BYTES: usize = 1024 * 1024;

/// The payload of a grouped message: the encoded batches one per line
/// ([`BATCH_SEPARATOR`]), LZ4-compressed with the length in front (read by [`decode_payload`]
/// and [`split_batches`]).
pub fn encode_group<'a>(batches: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    // Sized once: growing by doubling copied a large group's bytes about twice over.
    let mut lines = Vec::with_capacity(batches.clone().map(|b| b.len() + 1).sum());
    for (i, batch) in batches.enumerate() {
        if i > 0 {
            lines.push(BATCH_SEPARATOR);
        }
        lines.extend_from_slice(batch);
    }
    lz4_flex::block::compress_prepend_size(&lines)
}

/// The payload of a stream message as its batches' lines, given its [`ENCODING_HEADER`].
pub fn decode_payload<'a>(encoding: Option<&str>, payload: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, String> {
    match encoding {
        None => Ok(std::borrow::Cow::Borrowed(payload)),
        Some(LZ4) => {
            let claimed = payload.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            match claimed {
                Some(n) if n <= MAX_DECODED_BYTES => lz4_flex::block::decompress_size_prepended(payload)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| format!("corrupt {LZ4} payload: {e}")),
                Some(n) => Err(format!("{LZ4} payload claims {n} bytes, more than {MAX_DECODED_BYTES}")),
                None => Err(format!("{LZ4} payload shorter than its length prefix")),
            }
        }
        Some(other) => Err(format!("unknown payload encoding {other:?}")),
    }
}

/// Separates the batches of one stream message.
pub const BATCH_SEPARATOR: u8 = b'\n';

/// The encoded batches of one stream message, in order (empty lines are skipped).
pub fn split_batches(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload.split(|b| *b == BATCH_SEPARATOR).filter(|line| !line.iter().all(u8::is_ascii_whitespace))
}

/// How many batches a stream message carries, without decoding it.
pub fn count_batches(payload: &[u8]) -> usize {
    split_batches(payload).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Batch;

    #[test]
    fn compressed_payloads_read_back_and_bad_ones_are_refused() {
        let line = br#"{"a":"https://example.com/x"}"#;
        let packed = encode_group(std::iter::repeat_n(&line[..], 40));
        let decoded = decode_payload(Some(LZ4), &packed).expect("decodes");
        assert!(packed.len() < decoded.len() / 4, "{} of {}", packed.len(), decoded.len());
        assert_eq!(split_batches(&decoded).collect::<Vec<_>>(), vec![&line[..]; 40]);
        let group = line.repeat(3);
        assert_eq!(decode_payload(None, &group).expect("as is").as_ref(), &group[..]);
        let mut bomb = packed.clone();
        bomb[..4].copy_from_slice(&(64u32 << 20).to_le_bytes());
        assert!(decode_payload(Some(LZ4), &bomb).is_err(), "a claimed size past the limit is refused");
        assert!(decode_payload(Some(LZ4), &packed[..packed.len() / 2]).is_err(), "a cut payload is refused");
        assert!(decode_payload(Some("zstd"), &packed).is_err());
    }

    #[test]
    fn a_message_splits_into_its_batches() {
        let one = br#"{"site_id":"s","batch_id":"b1","note":"a\nb"}"#;
        assert_eq!(split_batches(one).collect::<Vec<_>>(), vec![&one[..]], "an escaped newline is no separator");
        let group = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
        assert_eq!(split_batches(group).collect::<Vec<_>>(), vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        assert_eq!(count_batches(group), 3);
        assert_eq!(count_batches(b"{\"a\":1}\n\n"), 1);
        assert_eq!(count_batches(b""), 0);
    }

    #[test]
    fn published_json_reads_back_as_the_owned_message() {
        let body = br#"{"key":"k_abcdefgh","batch_id":"batch_0001","session_id":"sess_0001","events":[
            {"type":"pageview","ts":1,"page_id":"page_0001","url":"https://example.com/a#top","referrer":"https://t.co/x",
             "title":"A","new_session":true,"variant":"B"},
            {"type":"event","ts":2,"page_id":"page_0001","url":"https://example.com/a","name":"Signup","props":{"plan":"pro","n":2.5}}]}"#;
        let batch = Batch::parse(body).expect("valid");
        let msg = BatchMessageRef {
            site_id: "site1",
            batch_id: &batch.batch_id,
            session_id: &batch.session_id,
            received_at: 42,
            visitor: "v",
            timezone: "UTC",
            domain: "example.com",
            currency: "EUR",
            device: Device::Mobile,
            browser: Browser::Safari,
            os: Os::Ios,
            country: Country::parse("DE"),
            events: &batch.events,
        };
        let json = serde_json::to_vec(&msg).expect("serializes");
        let back: BatchMessage = serde_json::from_slice(&json).expect("reads as the owned message");
        assert_eq!(back.msg_id(), msg.msg_id());
        assert_eq!(back.msg_id(), "site1:batch_0001");
        assert_eq!(
            (back.device, back.browser, back.os, back.country.as_str()),
            (Device::Mobile, Browser::Safari, Os::Ios, "DE")
        );
        assert_eq!(back.events, batch.events.iter().map(|e| e.to_owned_event()).collect::<Vec<_>>());
        assert_eq!(back.events[0].url, "https://example.com/a");
    }

    #[test]
    fn messages_without_audience_fields_still_read() {
        let v1 = r#"{"site_id":"s","batch_id":"batch_0001","session_id":"sess_0001","received_at":1,"visitor":"v",
                     "timezone":"UTC","domain":"example.com","events":[]}"#;
        let msg: BatchMessage = serde_json::from_str(v1).expect("v1 message");
        assert_eq!(
            (msg.device, msg.browser, msg.os, msg.country),
            (Device::Desktop, Browser::Other, Os::Other, Country::UNKNOWN)
        );
        assert_eq!(serde_json::to_value(&msg).expect("ser")["country"], "(unknown)");
    }
}
