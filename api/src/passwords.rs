//! Password rules and bcrypt, run off the async runtime.

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

/// Hashes on the blocking pool.
pub async fn hash(password: String, cost: u32) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Verifies on the blocking pool; a malformed stored hash counts as a mismatch.
pub async fn verify(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Normalizes and checks an email address: one `@`, a dotted domain, no spaces, at most 254.
pub fn parse_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_ascii_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err(ApiError::InvalidEmail("must be an email address"));
    };
    let ok = !local.is_empty()
        && email.len() <= 254
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
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@example.com", "<a>@example.com"] {
            assert!(parse_email(bad).is_err(), "case {bad:?}");
        }
    }
}
