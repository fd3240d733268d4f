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
    /// What each site is configured to count (its goals), one document per site (see
    /// [`crate::site_config`]).
    pub const SITE_CONFIG: &str = "site_config";
    /// Share links of sites' stats, by the SHA-256 of their token (see `api/src/routes/share.rs`).
    pub const SHARE_LINKS: &str = "share_links";
    /// Before `site_config`: one document per goal; migrated, then dropped.
    pub const LEGACY_GOALS: &str = "goals";
    /// One counter per account: the sites it holds or is creating (`CP_MAX_SITES_PER_ACCOUNT`).
    pub const SITE_COUNTS: &str = "site_counts";
    /// One document per user: their Stats API keys, hashed (v3; `api/src/stats_keys.rs`).
    pub const STATS_KEYS: &str = "stats_keys";
    /// Mail waiting for, or sent to, the SMTP server: one document per report week, alert window
    /// or invitation and recipient (`api/src/mail/outbox.rs`; [`crate::mail`]).
    pub const OUTBOX: &str = "outbox";
    /// One document per site: its members and invitations, weekly-report opt-ins and alerts
    /// (see [`crate::team`]).
    pub const SITE_TEAMS: &str = "site_teams";
    /// One document per (site, member): how a member's sites are listed (see [`crate::team`]).
    pub const MEMBERSHIPS: &str = "memberships";
    /// Leases of the api's scheduled jobs: one holder across processes (`api/src/lease.rs`).
    pub const LEASES: &str = "leases";
    /// One document per accepted tracker batch (the bucket pattern).
    pub const RAW_BATCHES: &str = "raw_batches";
    /// One record per aggregator flush: the unit of the exactly-once protocol.
    pub const FLUSHES: &str = "flushes";
    /// One document per (site, day, visitor): exact daily unique counts.
    pub const VISITOR_MARKS: &str = "visitor_marks";
    /// What each session is known to have done (aggregator only; see `aggregator/src/sessions.rs`).
    pub const SESSIONS: &str = "sessions";
    /// The rollup documents stats are read from: site-days and, once split, their units (see
    /// [`crate::rollup`]).
    pub const ROLLUPS: &str = "rollups_v3";
    /// Backfills under way: one per new goal or funnel, counting the raw batches kept from
    /// before it existed (see [`crate::backfill`]); removed when done.
    pub const BACKFILLS: &str = "backfills";
    /// The days of an import waiting to be counted (v3), `_id` = `site|import|n`: written by
    /// the api, read by `_id` and removed by the aggregator that counts them.
    pub const IMPORT_CHUNKS: &str = "import_chunks";
    /// Which site takes Plausible's Events API for a domain (v3), `_id` = the domain: inserted
    /// when a site turns `plausible_compatible` on (a duplicate is 409 `domain_taken`), removed
    /// when it turns it off, changes domain or is deleted.
    pub const PLAUSIBLE_DOMAINS: &str = "plausible_domains";
    /// Leases taken while an aggregator recovers a flush that another process left half done.
    pub const RECOVERIES: &str = "recoveries";
    /// One-off data migrations done, and the lease of one under way.
    pub const MIGRATIONS: &str = "migrations";
    /// Before site-days (`rollups_v3`): one document per unit; migrated, then dropped.
    pub const LEGACY_V2_ROLLUPS: &str = "rollups_v2";
    /// Before `rollups_v2`: counters per (site, day) and (site, hour); migrated, then dropped.
    pub const LEGACY_ROLLUPS: &str = "rollups";
    /// Before `rollups_v2`: one document per (site, bucket, dimension, key); migrated, then dropped.
    pub const LEGACY_TOP_ROLLUPS: &str = "top_rollups";
}
