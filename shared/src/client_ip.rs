//! The client's IP: the socket peer, or — only when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For`. Anyone can send that header, so believing it from
//! untrusted peers would let a client pick its own rate-limit bucket and visitor id.

use std::net::IpAddr;

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
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| anyhow::anyhow!("{item:?} has a bad prefix length"))?,
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

/// The client address for a request from `peer` with the given `X-Forwarded-For` value.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else { return peer };
    // Walk from the right: each hop appended the address it saw; the first one that is not
    // one of our proxies is the client.
    for hop in xff.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(ip) => continue,
            Ok(ip) => return canonical(ip),
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
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
            assert_eq!(client_ip(ip(peer), xff, &trusted), ip(want), "case {peer} {xff:?}");
        }
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        for bad in ["10.0.0.0/33", "not-an-ip", "1.2.3.4/x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "case {bad}");
        }
        assert!(TrustedProxies::parse("").expect("empty ok").0.is_empty());
    }
}
