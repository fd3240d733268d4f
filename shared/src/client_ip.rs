//! The client's IP: the socket peer, or — only when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For`. Anyone can send that header, so believing it from
//! untrusted peers would let a client pick its own rate-limit bucket and visitor id.
//!
//! A request may carry several `X-Forwarded-For` lines (a proxy may add its own line instead of
//! appending to the client's); together they are one list, the lines in order. It is read from
//! the right, and only as far as the hops are our own proxies: the first address that is not
//! one of them is the client, whatever the client wrote further left. Ingest and the api both
//! read it through [`client_ip_from_headers`], the one way to do it.
//!
//! Limits keyed by a client address use [`client_net`], so that a client cannot escape them
//! by rotating through the addresses it holds.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;

/// A list of proxy addresses and networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `"127.0.0.1, 10.0.0.0/8, ::1"`. Empty means none.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (ip, len) = match item.split_once('/') {
                Some((ip, len)) => (ip, Some(len)),
                None => (item, None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| anyhow::anyhow!("{item:?} is not an IP address or CIDR"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| anyhow::anyhow!("{item:?} has a bad prefix length"))?,
                None => max,
            };
            nets.push((ip, len));
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|(net, len)| in_net(ip, canonical(*net), *len))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The client address for a request from `peer`, reading every `X-Forwarded-For` line.
pub fn client_ip_from_headers(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let lines = headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().ok());
    client_ip_from_lines(peer, lines, trusted)
}

/// The network a client address is counted under by every per-address limit: an IPv4 address
/// (also written IPv4-mapped) as is, an IPv6 address by its /64, which one subscriber line or
/// host usually holds whole and can rotate through.
pub fn client_net(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// `lines` in the order received; `None` for a line that is not text.
fn client_ip_from_lines<'h>(
    peer: IpAddr,
    lines: impl DoubleEndedIterator<Item = Option<&'h str>>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    // Walk from the right: each hop appended the address it saw; the first one that is not
    // one of our proxies is the client. Anything unreadable on the way means we cannot tell
    // who is behind it, so the last proxy we know of stands for the client.
    let mut nearest = peer;
    for line in lines.rev() {
        let Some(line) = line else { return nearest };
        for hop in line.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>().map(canonical) {
                Ok(ip) if trusted.contains(ip) => nearest = ip,
                Ok(ip) => return ip,
                Err(_) => return nearest,
            }
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn one_line(xff: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(line) = xff {
            headers.append("x-forwarded-for", line.parse().expect("header value"));
        }
        headers
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").expect("parses");
        let cases = [
            ("203.0.113.5", Some("198.51.100.1"), "203.0.113.5"),
            ("127.0.0.1", Some("198.51.100.1"), "198.51.100.1"),
            ("127.0.0.1", Some("198.51.100.1, 10.1.2.3"), "198.51.100.1"),
            ("127.0.0.1", Some("6.6.6.6, 198.51.100.1"), "198.51.100.1"),
            ("127.0.0.1", None, "127.0.0.1"),
            ("127.0.0.1", Some("garbage"), "127.0.0.1"),
            ("::ffff:127.0.0.1", Some("198.51.100.7"), "198.51.100.7"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(client_ip_from_headers(ip(peer), &one_line(xff), &trusted), ip(want), "case {peer} {xff:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let cases = [
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("::1", "::"),
        ];
        for (addr, want) in cases {
            assert_eq!(client_net(ip(addr)), ip(want), "case {addr}");
        }
    }

    #[test]
    fn every_forwarded_for_line_is_read_right_to_left() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").expect("parses");
        let cases: [(&str, &[&str], &str); 7] = [
            ("client line then proxy line", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            ("forged line before a trusted proxy's line", &["1.1.1.1, 6.6.6.6", "198.51.100.2, 10.0.0.5"], "198.51.100.2"),
            ("all hops trusted: the leftmost proxy stands", &["10.0.0.9", "10.0.0.5"], "10.0.0.9"),
            ("garbage right of the client: the nearest proxy stands", &["198.51.100.3", "bogus, 10.0.0.5"], "10.0.0.5"),
            ("empty last line: no one to believe, the peer stands", &["198.51.100.4", ""], "127.0.0.1"),
            ("single line", &["198.51.100.5"], "198.51.100.5"),
            ("no line", &[], "127.0.0.1"),
        ];
        for (case, lines, want) in cases {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append("x-forwarded-for", line.parse().expect("header value"));
            }
            assert_eq!(client_ip_from_headers(ip("127.0.0.1"), &headers, &trusted), ip(want), "case {case}");
        }
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "198.51.100.1".parse().expect("value"));
        assert_eq!(client_ip_from_headers(ip("203.0.113.5"), &headers, &trusted), ip("203.0.113.5"), "untrusted peer");
        headers.append("x-forwarded-for", axum::http::HeaderValue::from_bytes(b"\xff").expect("opaque value"));
        assert_eq!(client_ip_from_headers(ip("127.0.0.1"), &headers, &trusted), ip("127.0.0.1"), "unreadable line");
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        for bad in ["10.0.0.0/33", "not-an-ip", "1.2.3.4/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "case {bad}");
        }
        assert!(TrustedProxies::parse("").expect("empty ok").0.is_empty());
    }
}
