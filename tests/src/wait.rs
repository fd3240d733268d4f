//! Waiting for a condition by polling with a deadline; never a fixed sleep.

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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
