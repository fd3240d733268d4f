//! What ingest knows of a site, keyed by API key in the `cp_sites` bucket, and the rules for a
//! site's domain and time zone.

use serde::{Deserialize, Serialize};

/// The value stored under a site's API key in the sites key-value bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteEntry {
    pub site_id: String,
    pub domain: String,
    pub timezone: String,
    /// The currency of revenue that names none (v3; `USD` in entries written before).
    #[serde(default = "crate::money::default_currency")]
    pub currency: String,
    /// The site takes Plausible's Events API at ingest's `POST /api/event`, found by its
    /// domain (v3; one site per domain).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plausible: bool,
}

/// A bare host name (`example.com`, `localhost`): labels of `a-z0-9-`, no scheme, port, path
/// or wildcard; at most 253 bytes as sent. Surrounding ASCII white space and one trailing dot
/// are dropped and the rest lower-cased: the normalized form is returned. (docs/openapi.yaml's
/// `Domain` pattern says the same.)
pub fn parse_domain(raw: &str) -> Option<String> {
    if raw.len() > 253 {
        return None;
    }
    let d = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
    if d.is_empty() {
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
        let good = [
            ("example.com", "example.com"),
            ("Sub.Example.COM.", "sub.example.com"),
            ("localhost", "localhost"),
            (" \texample.com\n", "example.com"),
        ];
        for (raw, want) in good {
            assert_eq!(parse_domain(raw).as_deref(), Some(want), "case {raw}");
        }
        let too_long = format!("{}.com", "a".repeat(250));
        for bad in [
            "",
            ".",
            "https://example.com",
            "example.com/path",
            "example.com:8080",
            "*.example.com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "example.com..",
            "\u{a0}example.com",
            &too_long,
        ] {
            assert_eq!(parse_domain(bad), None, "case {bad}");
        }
    }
}
