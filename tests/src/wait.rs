//! Waiting for a condition by polling with a deadline; never a fixed sleep.
//!
//! [`until_within`] holds a wait to a bound measured from a moment already past (when a change
//! was acknowledged), so several waits for the effects of one change share one bound.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(limit, check).await {
        Some(v) => v,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, and panics naming `what` unless that happened within
/// `limit` of `since`: the bound a contract sets from the moment a change was acknowledged
/// ("within 5 s"), however long the test took to start looking. A check that probes several
/// effects of the change at once holds each of them to that bound.
pub async fn until_within<T, F, Fut>(what: &str, since: impl Into<Instant>, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let since = since.into();
    let found = poll((since + limit).saturating_duration_since(Instant::now()), check).await;
    // When the check said yes: an upper bound on when the effect happened.
    let took = since.elapsed();
    match found {
        Some(v) if took <= limit => v,
        Some(_) => panic!("{what} took {took:?}, more than {limit:?}"),
        None => panic!("{what} did not happen within {limit:?} ({took:?} since the change)"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`; `None` once `limit` has passed.
pub async fn poll<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // The poll interval: the one sleep a wait needs, between looks at the condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A condition that holds from `at` on.
    fn holds_from(at: Instant) -> impl FnMut() -> std::future::Ready<Option<()>> {
        move || std::future::ready((Instant::now() >= at).then_some(()))
    }

    #[tokio::test]
    async fn a_wait_within_its_bound_of_the_change_passes() {
        let since = Instant::now();
        until_within("the effect", since, Duration::from_millis(400), holds_from(since + Duration::from_millis(100))).await;
    }

    #[tokio::test]
    #[should_panic(expected = "did not happen within 300ms")]
    async fn a_wait_that_starts_late_gets_no_more_than_the_bound_from_the_change() {
        // The change was acknowledged 200 ms ago; its effect shows 200 ms from now: 400 ms
        // after the change, though only 200 ms after this wait began.
        let since = Instant::now() - Duration::from_millis(200);
        until_within("the effect", since, Duration::from_millis(300), holds_from(since + Duration::from_millis(400))).await;
    }
}
