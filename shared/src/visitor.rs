//! The cookie-free visitor hash: SHA-256 of a daily salt, the site, the client IP and the
//! User-Agent. Only the hash leaves the ingest process; the IP and User-Agent are never stored.

use std::{fmt::Write as _, net::IpAddr};

use sha2::{Digest, Sha256};

/// A visitor id: 128 bits as 32 lowercase hex digits, kept on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorId([u8; 32]);

impl VisitorId {
    pub fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// 128-bit hex visitor id for (salt, site, ip, user agent), without allocating. The IP is
/// hashed in its usual text form, so the id equals [`visitor_hash`] of `ip.to_string()`.
pub fn visitor_id(salt: &[u8], site_id: &str, ip: IpAddr, user_agent: &str) -> VisitorId {
    let mut text = IpText { buf: [0; 48], len: 0 };
    // An IPv6 address is at most 45 characters; the buffer never fills.
    let _ = write!(text, "{ip}");
    let digest = digest(salt, site_id, &text.buf[..text.len], user_agent);
    let mut out = [0u8; 32];
    // 16 bytes always fill 32 hex digits exactly.
    let _ = hex::encode_to_slice(&digest[..16], &mut out);
    VisitorId(out)
}

/// 128-bit hex visitor id for (salt, site, ip, user agent).
pub fn visitor_hash(salt: &[u8], site_id: &str, ip: &str, user_agent: &str) -> String {
    hex::encode(&digest(salt, site_id, ip.as_bytes(), user_agent)[..16])
}

fn digest(salt: &[u8], site_id: &str, ip: &[u8], user_agent: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [salt, site_id.as_bytes(), ip, user_agent.as_bytes()] {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// An IP address written out on the stack.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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

    #[test]
    fn stack_id_equals_the_text_hash() {
        for ip in ["203.0.113.9", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::1", "0.0.0.0"] {
            let addr: IpAddr = ip.parse().expect("ip");
            assert_eq!(
                visitor_id(b"salt", "site", addr, "UA").as_str(),
                visitor_hash(b"salt", "site", ip, "UA"),
                "case {ip}"
            );
        }
    }
}
