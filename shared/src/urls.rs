//! Paths, hosts and referrer sources out of the URLs the tracker reports.

use url::Url;

/// Label for traffic without a referrer from another site.
pub const DIRECT: &str = "(direct)";

/// True for an absolute `http` or `https` URL with a host.
pub fn is_http_url(raw: &str) -> bool {
    plain_http_url(raw)
        || Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// The common case, decided without the full URL parser (which allocates and runs the IDNA
/// mapping; on ingest's hot path it was 2% of the time): `http://` or `https://`, a host of
/// ASCII letters, digits, dots and hyphens in non-empty labels, none of them punycode, the last
/// one not a number (so no IPv4 parsing applies), an optional port of at most 65535, then
/// printable ASCII only. Every such string is a valid URL with that host (WHATWG), so `true`
/// is always right; anything else (`false`) goes to the parser.
fn plain_http_url(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")) else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    });
    let labels_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        });
    let last = host.rsplit('.').next().unwrap_or_default();
    let last_not_number =
        last.bytes().any(|b| !b.is_ascii_digit()) && !last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"));
    port_ok && labels_ok && last_not_number && tail.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The path of a page URL, without query string or fragment; `/` when it has none.
pub fn page_path(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) if !u.path().is_empty() => u.path().to_string(),
        _ => "/".to_string(),
    }
}

/// True when `host` is `domain` itself or one of its subdomains (never `notexample.com` for
/// `example.com`). Both are compared case-insensitively, a trailing dot ignored.
pub fn host_matches_domain(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return false;
    }
    host == domain || host.strip_suffix(&domain).is_some_and(|rest| rest.ends_with('.'))
}

/// The host of an `Origin` header value (`scheme://host[:port]`), lower-cased.
pub fn origin_host(origin: &str) -> Option<String> {
    let u = Url::parse(origin).ok()?;
    u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// Where a session came from: the page URL's `utm_source` when present, else the referrer's host
/// without a leading `www.`; an empty referrer or one from the site's own domain is direct.
pub fn referrer_source(page_url: &str, referrer: &str, site_domain: &str) -> String {
    if let Ok(page) = Url::parse(page_url)
        && let Some((_, source)) = page.query_pairs().find(|(k, _)| k == "utm_source")
    {
        let source = source.trim();
        if !source.is_empty() {
            return source.to_string();
        }
    }
    let referrer = referrer.trim();
    if referrer.is_empty() {
        return DIRECT.to_string();
    }
    let host = match Url::parse(referrer) {
        Ok(u) => u.host_str().map(str::to_ascii_lowercase),
        Err(_) => None,
    };
    match host {
        Some(host) if host_matches_domain(&host, site_domain) => DIRECT.to_string(),
        Some(host) => host.strip_prefix("www.").unwrap_or(&host).to_string(),
        // Not a URL (an app scheme, a bare word): count it as given rather than lose it.
        None => referrer.chars().take(128).collect(),
    }
}

/// Longest UTM value kept, in characters.
pub const MAX_UTM_CHARS: usize = 200;

/// The value of a `utm_*` parameter of a page URL (`utm_campaign`, `utm_medium`), trimmed and
/// cut to [`MAX_UTM_CHARS`]; `None` when absent or empty.
pub fn utm(page_url: &str, name: &str) -> Option<String> {
    let page = Url::parse(page_url).ok()?;
    let (_, value) = page.query_pairs().find(|(k, _)| k == name)?;
    let value: String = value.trim().chars().take(MAX_UTM_CHARS).collect();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_check_never_accepts_what_the_parser_refuses() {
        let slow = |raw: &str| {
            Url::parse(raw)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        };
        let cases = [
            "https://www.example-shop.com/blog/post-1?utm_source=x&utm_medium=cpc#top",
            "http://example.com",
            "https://example.com:8443/a",
            "https://example.com:65535/",
            "https://example.com:65536/",
            "https://example.com:/",
            "https://example.com:99999999/",
            "https://example.com:0x50/",
            "https://EXAMPLE.com/A%zz",
            "https://a..b/",
            "https://.example.com/",
            "https://example.com./",
            "https://-a-.com/",
            "https://1.2.3.4/",
            "https://1.2.3.999/",
            "https://example.123/",
            "https://example.0x1f/",
            "https://0x7f.1/",
            "https://xn--nxasmq6b.com/",
            "https://xn--a.com/",
            "https://XN--a.com/",
            "https://user:pw@example.com/",
            "https://[::1]/",
            "https://exa mple.com/",
            "https://example.com/a b",
            "https://example.com/é",
            "https://éxample.com/",
            "https://example.com\\path",
            "https:example.com",
            "https:///example.com",
            "https://",
            "https://:80/",
            "ftp://example.com/",
            "javascript:alert(1)",
            "https://example.com/?q=\"x\"&r=<>",
            "https://example.com/\u{7f}",
            "https://ex_ample.com/",
            "https://a.b-c.d9/",
        ];
        for raw in cases {
            if plain_http_url(raw) {
                assert!(slow(raw), "the plain check accepted {raw:?}, which the parser refuses");
            }
            assert_eq!(is_http_url(raw), slow(raw), "{raw:?}");
        }
        assert!(plain_http_url("https://www.example-shop.com/blog/post-1?utm_source=x#top"), "the common case is plain");
        assert!(plain_http_url("http://localhost:8080/"));
    }

    #[test]
    fn page_path_drops_query_and_fragment() {
        let cases = [
            ("https://example.com/pricing?plan=pro#faq", "/pricing"),
            ("https://example.com", "/"),
            ("http://example.com/a/b/", "/a/b/"),
            ("https://example.com/%3Cimg%3E", "/%3Cimg%3E"),
        ];
        for (url, want) in cases {
            assert_eq!(page_path(url), want, "case {url}");
        }
    }

    #[test]
    fn domain_match_allows_subdomains_only() {
        let cases = [
            ("example.com", "example.com", true),
            ("www.example.com", "example.com", true),
            ("a.b.example.com", "example.com", true),
            ("EXAMPLE.com", "example.com", true),
            ("notexample.com", "example.com", false),
            ("example.com.evil.io", "example.com", false),
            ("example.co", "example.com", false),
        ];
        for (host, domain, want) in cases {
            assert_eq!(host_matches_domain(host, domain), want, "case {host} vs {domain}");
        }
    }

    #[test]
    fn origin_host_parses_scheme_host_port() {
        assert_eq!(origin_host("https://www.Example.com:8443").as_deref(), Some("www.example.com"));
        assert_eq!(origin_host("null"), None);
    }

    #[test]
    fn utm_parameters_are_read_trimmed_and_bounded() {
        let url = "https://example.com/?utm_campaign=spring%20sale&utm_medium=%20email%20&utm_source=x&utm_term=";
        assert_eq!(utm(url, "utm_campaign").as_deref(), Some("spring sale"));
        assert_eq!(utm(url, "utm_medium").as_deref(), Some("email"));
        assert_eq!(utm(url, "utm_term"), None, "empty");
        assert_eq!(utm("https://example.com/", "utm_campaign"), None, "absent");
        let long = format!("https://example.com/?utm_campaign={}", "c".repeat(500));
        assert_eq!(utm(&long, "utm_campaign").map(|c| c.len()), Some(MAX_UTM_CHARS));
    }

    #[test]
    fn referrer_classification() {
        let site = "example.com";
        let cases = [
            ("https://example.com/?utm_source=newsletter", "https://www.google.com/", "newsletter"),
            ("https://example.com/", "https://www.google.com/search?q=x", "google.com"),
            ("https://example.com/", "https://news.ycombinator.com/item", "news.ycombinator.com"),
            ("https://example.com/", "", DIRECT),
            ("https://example.com/", "https://example.com/other", DIRECT),
            ("https://example.com/", "https://blog.example.com/post", DIRECT),
            ("https://example.com/", "https://notexample.com/", "notexample.com"),
            ("https://example.com/?utm_source=", "https://t.co/x", "t.co"),
        ];
        for (page, referrer, want) in cases {
            assert_eq!(referrer_source(page, referrer, site), want, "case {page} / {referrer}");
        }
    }
}
