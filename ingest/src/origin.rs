//! Whether a request's `Origin` may post batches for a site: its host must be the site's domain
//! or a subdomain of it.
//!
//! Browsers send `Origin` on every batch, so the check runs on every request: the common shape,
//! `http(s)://host[:port]` with a plain ASCII host, is checked in place without allocating;
//! anything else (an IPv6 literal, an internationalized name, upper-case scheme) goes through
//! the full URL parser in [`shared::urls`].

use shared::urls;

/// True when `origin` belongs to `domain` (a normalized bare host name).
pub fn allowed(origin: &str, domain: &str) -> bool {
    match plain_host(origin) {
        Some(host) => host_in_domain(host, domain),
        None => urls::origin_host(origin).is_some_and(|host| urls::host_matches_domain(&host, domain)),
    }
}

/// The host of `http(s)://host[:port]` when it is plain ASCII letters, digits, `-` and `.`.
fn plain_host(origin: &str) -> Option<&str> {
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"))?;
    let host = match rest.split_once(':') {
        Some((host, port)) if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => rest,
    };
    let plain = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plain.then_some(host)
}

fn host_in_domain(host: &str, domain: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || host.len() < domain.len() {
        return false;
    }
    let (head, tail) = host.split_at(host.len() - domain.len());
    tail.eq_ignore_ascii_case(domain) && (head.is_empty() || head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_check_agrees_with_the_url_parser() {
        let domain = "example.com";
        let cases = [
            ("https://example.com", true),
            ("https://www.example.com", true),
            ("http://a.b.example.com:8080", true),
            ("https://WWW.Example.COM", true),
            ("https://example.com.", true),
            ("https://notexample.com", false),
            ("https://example.com.evil.io", false),
            ("https://example.co", false),
            ("https://com", false),
            ("null", false),
            ("", false),
            ("HTTPS://www.example.com", true),
            ("https://[::1]", false),
            ("https://example.com:notaport", false),
            ("https://user@example.com", true),
            ("https://evil.io#.example.com", false),
            ("https://bücher.example.com", true),
            ("file://example.com", true),
        ];
        for (origin, want) in cases {
            assert_eq!(allowed(origin, domain), want, "case {origin}");
            let slow = urls::origin_host(origin).is_some_and(|h| urls::host_matches_domain(&h, domain));
            assert_eq!(allowed(origin, domain), slow, "case {origin}: fast and full checks differ");
        }
    }
}
