//! Waiting for a condition by polling with a deadline; never a fixed sleep.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
