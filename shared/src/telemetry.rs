//! Logging: `tracing` to stdout, text by default, JSON with `CP_LOG_FORMAT=json`, level from
//! `RUST_LOG`. Every request runs in a `request` span ([`crate::http::track_metrics`]) that
//! handlers fill in with the site and the batch size; errors are logged with their cause chain
//! ([`Chain`]).

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("CP_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
}

/// Shows an error with its whole cause chain, `outer: cause: root cause`, the way `{:#}` shows
/// an `anyhow::Error`: `tracing::warn!(error = %Chain(&e), "...")`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_outermost_first() {
        let root = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = anyhow::Error::new(root).context("pulling from the stream").context("consumer");
        assert_eq!(Chain(&*err).to_string(), "consumer: pulling from the stream: connection refused");
        let bare = std::io::Error::other("alone");
        assert_eq!(Chain(&bare).to_string(), "alone");
    }
}
