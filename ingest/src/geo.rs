//! The country of a client IP, from an IP-to-country database in MaxMind DB format.
//!
//! The database is read once at start from `CP_GEOIP_DB` (the local run scripts point it at
//! the CC0 `@ip-location-db/geo-whois-asn-country-mmdb` package that `deploy/local/deps.sh`
//! installs; a GeoLite2 or GeoIP2 Country file works too). A missing or unreadable database
//! is logged once and every country is `(unknown)`: analytics without countries beat no
//! analytics. Only the country code leaves this module; the IP is never stored.

use std::{net::IpAddr, path::Path};

use serde::Deserialize;
use shared::audience::Country;
use shared::telemetry::Chain;

/// IP-to-country lookups; empty when no database could be read.
pub struct Countries {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
}

/// The fields a country record may carry: `country_code` (ip-location-db) or
/// `country.iso_code` (MaxMind).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

impl Countries {
    /// No database: every country is unknown.
    pub fn none() -> Self {
        Self { reader: None }
    }

    /// Reads the database at `path`; on any failure logs why and knows no country.
    pub fn open(path: Option<&Path>) -> Self {
        let Some(path) = path else {
            tracing::warn!("CP_GEOIP_DB is not set: countries are counted as (unknown)");
            return Self::none();
        };
        match maxminddb::Reader::open_readfile(path) {
            Ok(reader) => {
                tracing::info!(path = %path.display(), database = %reader.metadata().database_type, "ip-to-country database loaded");
                Self { reader: Some(reader) }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %Chain(&e), "cannot read the ip-to-country database: countries are counted as (unknown)");
                Self::none()
            }
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.reader.is_some()
    }

    /// The country of `ip`, or unknown.
    pub fn lookup(&self, ip: IpAddr) -> Country {
        let Some(reader) = &self.reader else { return Country::UNKNOWN };
        // IPv6 databases keep IPv4 under ::/96, not under the mapped ::ffff:0:0/96.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // Databases place some of these anyway (2001:db8::/32 reads as JP in one of them).
        if !routable(ip) {
            return Country::UNKNOWN;
        }
        let record = reader.lookup(ip).and_then(|found| found.decode::<Record<'_>>());
        match record {
            Ok(Some(r)) => r.country_code.or(r.country.and_then(|c| c.iso_code)).map_or(Country::UNKNOWN, Country::parse),
            _ => Country::UNKNOWN,
        }
    }
}

/// False for loopback, private, link-local, documentation and other never-routed addresses:
/// they belong to no country.
fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || shared)
        }
        IpAddr::V6(v6) => {
            let documentation = v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8;
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_unique_local() || v6.is_unicast_link_local() || documentation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installed by `deploy/local/deps.sh` (as `make test` runs it).
    const DB: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/geoip/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb"
    );

    #[test]
    fn known_addresses_have_their_country() {
        let countries = Countries::open(Some(Path::new(DB)));
        assert!(countries.is_loaded(), "{DB} is missing: run deploy/local/deps.sh");
        let cases = [
            ("Google public DNS", "8.8.8.8", "US"),
            ("Google public DNS over IPv6", "2001:4860:4860::8888", "US"),
            ("heise.de", "193.99.144.80", "DE"),
            ("University of Tokyo", "133.11.0.1", "JP"),
            ("IPv4-mapped IPv6", "::ffff:193.99.144.80", "DE"),
            ("loopback", "127.0.0.1", "(unknown)"),
            ("private network", "10.1.2.3", "(unknown)"),
            ("documentation prefix", "2001:db8::1", "(unknown)"),
            ("unique local", "fd00::1", "(unknown)"),
            ("carrier-grade NAT", "100.64.1.1", "(unknown)"),
        ];
        for (case, ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(countries.lookup(ip).as_str(), want, "case {case} ({ip})");
        }
    }

    #[test]
    fn a_missing_or_broken_database_means_unknown() {
        let dir = std::env::temp_dir().join(format!("cp-geo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let broken = dir.join("broken.mmdb");
        std::fs::write(&broken, b"not a database").expect("write");
        for (case, path) in [("missing", Some(dir.join("absent.mmdb"))), ("broken", Some(broken)), ("unset", None)] {
            let countries = Countries::open(path.as_deref());
            assert!(!countries.is_loaded(), "case {case}");
            assert_eq!(countries.lookup("8.8.8.8".parse().expect("ip")), Country::UNKNOWN, "case {case}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
