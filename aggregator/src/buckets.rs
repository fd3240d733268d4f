//! The buckets of a batch: its local day, its local hour and its minute, by its server receive
//! time in its site's time zone. What the rollups count it in ([`crate::rollup`]) and what a
//! session remembers of it ([`crate::sessions`]).

use chrono_tz::Tz;
use shared::{message::BatchMessage, rollup::Bucket, time};

/// The buckets of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub day: Bucket,
    pub hour: Bucket,
    pub minute: Bucket,
}

impl Buckets {
    /// The buckets stats are read from: the day and the hour.
    pub fn stats(&self) -> [Bucket; 2] {
        [self.day, self.hour]
    }
}

/// The buckets a batch belongs to.
pub fn buckets_of(msg: &BatchMessage) -> Buckets {
    let tz: Tz = time::parse_tz(&msg.timezone).unwrap_or(Tz::UTC);
    Buckets {
        day: Bucket::Day(time::local_day(msg.received_at, tz)),
        hour: Bucket::Hour(time::hour_start(msg.received_at, tz)),
        minute: Bucket::Minute(time::minute_start(msg.received_at)),
    }
}
