//! Reading settings from environment variables, with defaults and clear failures: the helpers
//! only (the settings every service shares are in [`crate::backends`]).
//!
//! Each binary declares its own `Config` struct and fills it with these helpers, so that a
//! bad value stops the process at start with a message naming the variable.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use anyhow::{Context, bail};

/// The value of `name`, or `default` when unset or empty.
pub fn string(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => default.to_string(),
    }
}

/// The value of `name` parsed as `T`, or `default` when unset or empty.
pub fn parse<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse::<T>().map_err(|e| anyhow::anyhow!("{name}={v:?} is not valid: {e}"))
        }
        _ => Ok(default),
    }
}

/// The value of `name` parsed as `T` and within `min..=max`, or `default` when unset or empty.
/// Out of range (or NaN) stops the process with a message naming the variable and the range.
pub fn ranged<T>(name: &str, default: T, min: T, max: T) -> anyhow::Result<T>
where
    T: FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let v = parse(name, default)?;
    if !(min <= v && v <= max) {
        bail!("{name}={v} is out of range: it must be from {min} to {max}");
    }
    Ok(v)
}

/// A listen address from `name`.
pub fn addr(name: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let raw = string(name, default);
    raw.parse().with_context(|| format!("{name}={raw:?} is not a host:port socket address"))
}

/// A duration given in milliseconds by `name`, within `min_ms..=max_ms`.
pub fn millis(name: &str, default_ms: u64, min_ms: u64, max_ms: u64) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(ranged(name, default_ms, min_ms, max_ms)?))
}

/// A secret that must be present; `min_len` bytes at least.
pub fn secret(name: &str, min_len: usize) -> anyhow::Result<String> {
    let Ok(v) = std::env::var(name) else {
        bail!("{name} is required (at least {min_len} bytes); set it in the environment")
    };
    if v.len() < min_len {
        bail!("{name} must be at least {min_len} bytes long (it has {})", v.len());
    }
    Ok(v)
}

/// `scheme://user:password@host/...` with the password replaced, for logs.
pub fn redact_userinfo(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return uri.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{}", &rest[at + 1..])
        }
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_userinfo_hides_the_password_only() {
        let cases = [
            ("mongodb://cp:s3cret@mongo:27017/?authSource=admin", "mongodb://cp:<redacted>@mongo:27017/?authSource=admin"),
            ("mongodb://mongo:27017", "mongodb://mongo:27017"),
            ("mongodb://a:b@m1,m2/db?replicaSet=rs0", "mongodb://a:<redacted>@m1,m2/db?replicaSet=rs0"),
            ("not a uri", "not a uri"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_userinfo(input), want, "case {input:?}");
        }
    }
}
