//! Names of the JetStream stream, subjects, key-value buckets and MongoDB collections.
//!
//! Kept in one place so that a producer and its consumer cannot drift apart.

/// The JetStream stream that holds accepted tracker batches until the aggregator has them.
pub const STREAM: &str = "CP_EVENTS";
/// Subjects of the event stream; a batch is published on `cp.events.<site_id>`.
pub const SUBJECTS: &str = "cp.events.>";
/// The durable pull consumer shared by every aggregator process.
pub const CONSUMER: &str = "cp-aggregator";
/// Key-value bucket mapping a site API key to its [`crate::site::SiteEntry`].
pub const KV_SITES: &str = "cp_sites";
/// Key-value bucket holding one random visitor-hash salt per UTC day.
pub const KV_SALTS: &str = "cp_salts";

/// The subject a batch of `site_id` is published on.
pub fn event_subject(site_id: &str) -> String {
    format!("cp.events.{site_id}")
}

/// MongoDB collection names.
pub mod collections {
    /// Accounts.
    pub const USERS: &str = "users";
    /// Sites and their API keys.
    pub const SITES: &str = "sites";
    /// One document per accepted tracker batch (the bucket pattern).
    pub const RAW_BATCHES: &str = "raw_batches";
    /// One document per (site, day, visitor) and (site, hour, visitor): exact unique counts.
    pub const VISITOR_MARKS: &str = "visitor_marks";
    /// Counters per (site, day) and per (site, hour).
    pub const ROLLUPS: &str = "rollups";
    /// Counters per (site, day or hour, dimension, key) for the top lists.
    pub const TOP_ROLLUPS: &str = "top_rollups";
    /// Leases taken while an aggregator recovers a flush that another process left half done.
    pub const RECOVERIES: &str = "recoveries";
}
