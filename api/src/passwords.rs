//! Password and email rules, and bcrypt: run off the async runtime, and never more at once
//! than the CPUs can take.

use std::{sync::Arc, time::Duration};

use shared::ids::Email;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// bcrypt reads at most 72 bytes; longer passwords would be silently truncated, so refuse them.
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checks the contract's password rules.
pub fn check_strength(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::WeakPassword("must be at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::WeakPassword("must be at most 72 bytes"));
    }
    Ok(())
}

/// How long a login waits for a bcrypt slot before 503.
const LOGIN_WAIT: Duration = Duration::from_secs(3);
/// How long a registration waits for a bcrypt slot before 503.
const REGISTER_WAIT: Duration = Duration::from_millis(500);

/// bcrypt with bounded concurrency. Each call takes tens to hundreds of milliseconds of one
/// CPU; unbounded, a flood of registrations would fill the blocking pool and starve logins.
/// Logins and registrations have separate slots, so registrations can take at most their own
/// share of the CPUs, and a caller that cannot get a slot soon gets 503 with Retry-After.
#[derive(Clone)]
pub struct Hasher {
    cost: u32,
    login: Arc<Semaphore>,
    register: Arc<Semaphore>,
}

impl Hasher {
    /// `concurrency` login verifications at once, and half as many registrations (at least 1).
    pub fn new(cost: u32, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            cost,
            login: Arc::new(Semaphore::new(concurrency)),
            register: Arc::new(Semaphore::new((concurrency / 2).max(1))),
        }
    }

    /// Hashes a new account's password.
    pub async fn hash_new(&self, password: String) -> Result<String, ApiError> {
        let _slot = slot(&self.register, REGISTER_WAIT).await?;
        hash(password, self.cost).await
    }

    /// Verifies a login's password.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let _slot = slot(&self.login, LOGIN_WAIT).await?;
        verify(password, hash).await
    }
}

async fn slot(permits: &Arc<Semaphore>, wait: Duration) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(wait, permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Busy),
    }
}

/// Hashes on the blocking pool.
pub async fn hash(password: String, cost: u32) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Verifies on the blocking pool; a malformed stored hash counts as a mismatch.
async fn verify(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Normalizes and checks an email address ([`Email::parse`]).
pub fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(ApiError::InvalidEmail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_bounds() {
        assert!(check_strength("1234567").is_err());
        assert!(check_strength("12345678").is_ok());
        assert!(check_strength(&"a".repeat(72)).is_ok());
        assert!(check_strength(&"a".repeat(73)).is_err());
        // 25 three-byte chars: 25 chars but 75 bytes.
        assert!(check_strength(&"€".repeat(25)).is_err());
    }
}
