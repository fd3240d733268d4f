//! Password and email rules, and bcrypt: run off the async runtime, and never more at once
//! than the CPUs can take.

use std::{sync::Arc, time::Duration};

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

/// Longest email address (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Normalizes and checks an email address: one `@`, a dotted domain, no spaces, at most 254
/// bytes as sent, checked before anything else so an oversized value costs nothing.
pub fn parse_email(raw: &str) -> Result<String, ApiError> {
    if raw.len() > MAX_EMAIL_BYTES {
        return Err(ApiError::InvalidEmail("must be an email address of at most 254 characters"));
    }
    let email = raw.trim().to_ascii_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err(ApiError::InvalidEmail("must be an email address"));
    };
    let ok = !local.is_empty()
        && !domain.contains('@')
        && shared::site::parse_domain(domain).is_some_and(|d| d.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"(),;:[]\\".contains(c));
    if ok { Ok(email) } else { Err(ApiError::InvalidEmail("must be an email address")) }
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

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ann@Example.COM ").expect("valid"), "ann@example.com");
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@example.com",
            "<a>@example.com",
            &long,
        ] {
            assert!(parse_email(bad).is_err(), "case {bad:?}");
        }
        assert!(parse_email(&long[1..]).is_ok(), "254 bytes is fine");
    }
}
