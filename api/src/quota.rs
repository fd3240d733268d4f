//! Per-tenant limits: how many sites an account holds (`CP_MAX_SITES_PER_ACCOUNT`), and how
//! often a site's key may be rotated (10 times an hour). Both hold when requests race, so
//! neither is a count followed by an insert.
//!
//! **Sites per account.** One counter document per account, `_id` = the owner's id
//! ([`SiteCountDoc`]), holds the sites the account has or is creating:
//!
//! 1. A create takes a slot before it writes anything: `$inc` of `n` on the filter
//!    `{_id: owner, n: {$lt: max}}`. MongoDB applies an update to one document atomically, so
//!    of 40 racing creates with `max - n = 5`, five match and 35 match nothing: the limit.
//! 2. No counter yet (the account's first create since the limit exists): it is inserted with
//!    `n` = the sites the account holds, and step 1 runs again. Of two racing inserts one loses
//!    on `_id`, and its create goes on with the winner's counter. No create passes step 1
//!    without a counter, so no create in flight is missing from that count.
//! 3. A create that fails after step 1 gives its slot back; a delete gives it back once the
//!    site document is gone. `n` never goes below 0. The create handler runs its steps in a
//!    task of its own, so a client that goes away cannot stop it between them.
//!
//! The counter can only run high, never low: an api process that dies between steps, or a
//! delete that lands between step 2's count and its insert, leaves a slot taken. Deleting the
//! account's counter document while it creates nothing rebuilds it from its sites (step 2).
//!
//! **Key rotations per site.** The site document keeps the times of its rotations within the
//! last hour (`key_rotations`, at most 10), and a rotate writes the new list with the new key
//! in the compare-and-set that swaps the key (`routes/sites.rs`): of racing rotates, one swap
//! wins each key, so the list cannot miss a rotation and at most 10 land in any hour.

use mongodb::{Collection, Database, bson::doc};
use shared::{
    names::collections as c,
    store::{MAX_KEY_ROTATIONS_PER_HOUR, SiteCountDoc, SiteDoc, is_duplicate_key, site_count_fields as f, site_fields},
};

use crate::error::ApiError;

/// Rounds of [`SiteSlots::take`]: each one lost is another request's slot taken or given
/// back in between.
const TAKE_TRIES: usize = 16;

/// The window of the rotation limit.
pub const ROTATION_WINDOW_MS: i64 = 3_600_000;

/// The rotation times to store with a rotation at `now_ms`: the ones within the hour before
/// it, oldest first, then `now_ms`. `Err(seconds)` when [`MAX_KEY_ROTATIONS_PER_HOUR`] are
/// within the hour already: how long until the oldest of them leaves it.
pub fn next_rotations(past: &[i64], now_ms: i64) -> Result<Vec<i64>, u64> {
    let mut recent: Vec<i64> = past.iter().copied().filter(|t| now_ms - t < ROTATION_WINDOW_MS).collect();
    recent.sort_unstable();
    if recent.len() >= MAX_KEY_ROTATIONS_PER_HOUR {
        // A slot frees when the rotation that would be the 11th-newest leaves the hour.
        let freeing = recent[recent.len() - MAX_KEY_ROTATIONS_PER_HOUR];
        let wait_ms = (freeing + ROTATION_WINDOW_MS - now_ms).clamp(1, ROTATION_WINDOW_MS);
        return Err((wait_ms as u64).div_ceil(1000));
    }
    recent.push(now_ms);
    Ok(recent)
}

/// The site counters of the accounts.
#[derive(Clone)]
pub struct SiteSlots {
    counts: Collection<SiteCountDoc>,
    sites: Collection<SiteDoc>,
    max: u32,
}

impl SiteSlots {
    pub fn new(db: &Database, max: u32) -> Self {
        Self { counts: db.collection(c::SITE_COUNTS), sites: db.collection(c::SITES), max }
    }

    /// Takes one of `owner`'s slots (steps 1 and 2), or [`ApiError::SiteLimit`].
    pub async fn take(&self, owner: &str) -> Result<(), ApiError> {
        let max = i64::from(self.max);
        for _ in 0..TAKE_TRIES {
            let taken =
                self.counts.update_one(doc! {"_id": owner, f::N: {"$lt": max}}, doc! {"$inc": {f::N: 1_i64}}).await?;
            if taken.matched_count == 1 {
                return Ok(());
            }
            match self.counts.find_one(doc! {"_id": owner}).await? {
                Some(counter) if counter.n >= max => return Err(ApiError::SiteLimit { max: self.max }),
                // Changed since the update: a racing create made the counter, or a delete
                // gave a slot back. Try again.
                Some(_) => {}
                None => {
                    let held = self.sites.count_documents(doc! {site_fields::OWNER_ID: owner}).await?;
                    let counter = SiteCountDoc { owner_id: owner.to_string(), n: i64::try_from(held).unwrap_or(i64::MAX) };
                    match self.counts.insert_one(&counter).await {
                        Ok(_) => {}
                        Err(e) if is_duplicate_key(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(ApiError::Unavailable(anyhow::anyhow!("the site counter of an account kept changing")))
    }

    /// Gives one of `owner`'s slots back (step 3).
    pub async fn give_back(&self, owner: &str) -> Result<(), ApiError> {
        self.counts.update_one(doc! {"_id": owner, f::N: {"$gt": 0_i64}}, doc! {"$inc": {f::N: -1_i64}}).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = ROTATION_WINDOW_MS;

    #[test]
    fn ten_rotations_an_hour_pass_and_the_eleventh_waits_for_the_oldest() {
        let now = 100 * H;
        let mut times = Vec::new();
        for i in 0..10 {
            times =
                next_rotations(&times, now + i * 1000).unwrap_or_else(|s| panic!("rotation {i} refused, retry after {s}"));
        }
        assert_eq!(times.len(), 10);
        // The first was at `now`: at `now + 9 s` an 11th waits until it is an hour old.
        assert_eq!(next_rotations(&times, now + 9_000), Err(3591));
        assert_eq!(next_rotations(&times, now + H - 1), Err(1), "a millisecond left rounds up to a second");
        let after = next_rotations(&times, now + H).expect("the oldest has left the hour");
        assert_eq!(after.len(), 10, "the list stays bounded");
        assert_eq!(after.first(), Some(&(now + 1000)));
        assert_eq!(after.last(), Some(&(now + H)));
    }

    #[test]
    fn rotation_times_outside_the_hour_or_out_of_order_are_handled() {
        let now = 100 * H;
        let cases: [(&str, Vec<i64>, Result<usize, u64>); 4] = [
            ("none", vec![], Ok(1)),
            ("all older than an hour", vec![now - 2 * H, now - H], Ok(1)),
            ("unsorted, ten in the hour", (0..10).rev().map(|i| now - i * 60_000).collect(), Err(3600 - 9 * 60)),
            ("twelve stored (never written, still bounded)", (0..12).map(|i| now - i * 1000).collect(), Err(3600 - 9)),
        ];
        for (case, past, want) in cases {
            assert_eq!(next_rotations(&past, now).map(|v| v.len()), want, "case {case}");
        }
    }
}
