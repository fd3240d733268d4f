//! The cookie-free visitor hash: SHA-256 of a daily salt, the site, the client IP and the
//! User-Agent. Only the hash leaves the ingest process; the IP and User-Agent are never stored.

use sha2::{Digest, Sha256};

/// 128-bit hex visitor id for (salt, site, ip, user agent).
pub fn visitor_hash(salt: &[u8], site_id: &str, ip: &str, user_agent: &str) -> String {
    let mut h = Sha256::new();
    for part in [salt, site_id.as_bytes(), ip.as_bytes(), user_agent.as_bytes()] {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_hash_and_any_change_differs() {
        let base = visitor_hash(b"salt", "site", "203.0.113.9", "UA");
        assert_eq!(base, visitor_hash(b"salt", "site", "203.0.113.9", "UA"));
        assert_eq!(base.len(), 32);
        assert_ne!(base, visitor_hash(b"salt2", "site", "203.0.113.9", "UA"));
        assert_ne!(base, visitor_hash(b"salt", "site2", "203.0.113.9", "UA"));
        assert_ne!(base, visitor_hash(b"salt", "site", "203.0.113.8", "UA"));
        assert_ne!(base, visitor_hash(b"salt", "site", "203.0.113.9", "UA2"));
        assert_ne!(visitor_hash(b"s", "ab", "c", ""), visitor_hash(b"s", "a", "bc", ""));
    }
}
