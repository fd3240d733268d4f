//! Values that cross crates as types of their own, so that a site key cannot be passed where a
//! batch id or an email address is wanted: [`SiteKey`] (the api makes it, the key-value bucket
//! and ingest look sites up by it), [`BatchId`] (the tracker names a batch, ingest passes it on,
//! the aggregator stores it once) and [`Email`] (normalized once, stored and compared as is).
//!
//! Each is a `String` on the wire and in MongoDB. Reading one back from a stored document does
//! not check it again: only what came through [`Email::parse`] or [`SiteKey::from_random`] is
//! ever written.

use std::{borrow::Borrow, fmt};

use base64::Engine as _;
use mongodb::bson::Bson;
use serde::{Deserialize, Serialize};

/// The string newtype plumbing: display, borrowing as `&str`, BSON and serde as a string.
macro_rules! string_type {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<&$name> for String {
            fn from(v: &$name) -> String {
                v.0.clone()
            }
        }

        impl From<$name> for Bson {
            fn from(v: $name) -> Bson {
                Bson::String(v.0)
            }
        }
    };
}

/// A site's public key, `cp_` and 32 URL-safe base64 characters (192 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteKey(String);
string_type!(SiteKey);

impl SiteKey {
    /// What every key starts with, so that it is recognisable in a page.
    pub const PREFIX: &str = "cp_";

    /// The key made of 24 random bytes.
    pub fn from_random(bytes: &[u8; 24]) -> Self {
        Self(format!("{}{}", Self::PREFIX, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A key as stored elsewhere (a site document, a bucket entry), taken as it is.
    pub fn from_stored(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

/// The tracker's name for one batch, unique per session; with the site it identifies a stored
/// batch (see [`crate::message::BatchMessage::msg_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(String);
string_type!(BatchId);

impl BatchId {
    /// A batch id the event schema has checked ([`crate::event::Batch::parse`]).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
}

/// An email address, trimmed and lower-cased: the form accounts are stored, found and
/// throttled by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);
string_type!(Email);

/// Longest email address (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

impl Email {
    /// Normalizes and checks an address: one `@`, a dotted domain, no spaces, at most
    /// [`MAX_EMAIL_BYTES`] as sent (checked first, so an oversized value costs nothing). The
    /// error says what is wrong, for a message naming the field.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > MAX_EMAIL_BYTES {
            return Err("must be an email address of at most 254 characters");
        }
        let email = raw.trim().to_ascii_lowercase();
        let Some((local, domain)) = email.split_once('@') else { return Err("must be an email address") };
        let ok = !local.is_empty()
            && !domain.contains('@')
            && crate::site::parse_domain(domain).is_some_and(|d| d.contains('.'))
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"(),;:[]\\".contains(c));
        if ok { Ok(Self(email)) } else { Err("must be an email address") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_the_prefix_and_32_url_safe_characters_and_a_string_everywhere() {
        let key = SiteKey::from_random(&[0xfb; 24]);
        assert_eq!(key.as_str(), "cp_-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7");
        assert_eq!(serde_json::to_string(&key).expect("json"), "\"cp_-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7\"");
        assert_eq!(Bson::from(&key), Bson::String(key.to_string()));
        let back: SiteKey = serde_json::from_str("\"cp_x\"").expect("json");
        assert_eq!(back, "cp_x");
    }

    #[test]
    fn emails_are_normalized_and_refusals_say_why() {
        assert_eq!(Email::parse(" Ann@Example.COM ").expect("valid"), "ann@example.com");
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        assert_eq!(Email::parse(&long), Err("must be an email address of at most 254 characters"));
        assert!(Email::parse(&long[1..]).is_ok(), "254 bytes is fine");
        for bad in
            ["", "ann", "@example.com", "ann@", "ann@example", "a@b@example.com", "a n@example.com", "a<b>@example.com"]
        {
            assert_eq!(Email::parse(bad), Err("must be an email address"), "{bad:?}");
        }
    }
}
