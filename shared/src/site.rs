//! What ingest knows of a site, keyed by API key in the `cp_sites` bucket, and the rules for a
//! site's domain and time zone.

use serde::{Deserialize, Serialize};

/// The value stored under a site's API key in the sites key-value bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteEntry {
    pub site_id: String,
    pub domain: String,
    pub timezone: String,
}

/// A bare host name (`example.com`, `localhost`): lower-cased labels of `a-z0-9-`, no scheme,
/// port, path or wildcard. Returns the normalized form.
pub fn parse_domain(raw: &str) -> Option<String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    d.split('.').all(label_ok).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let good = [("example.com", "example.com"), ("Sub.Example.COM.", "sub.example.com"), ("localhost", "localhost")];
        for (raw, want) in good {
            assert_eq!(parse_domain(raw).as_deref(), Some(want), "case {raw}");
        }
        for bad in ["", "https://example.com", "example.com/path", "example.com:8080", "*.example.com", "exa mple.com", "-a.com", "a..com"] {
            assert_eq!(parse_domain(bad), None, "case {bad}");
        }
    }
}
