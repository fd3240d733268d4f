//! Who sent a batch, as far as the stats show it: device class, browser family, operating
//! system and country. Ingest derives them from the User-Agent and the client IP (neither of
//! which leaves ingest); the aggregator counts sessions by them.
//!
//! Each is a closed set, so every top list built from them is bounded. Reading is lenient: a
//! name this build does not know (written by a newer ingest) reads as the default, never as an
//! error that would stall the stream.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Declares a closed set of names with a default, its string form and lenient serde.
macro_rules! named_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored and shown in stats.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value named `name` exactly, if there is one.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(LenientVisitor(|s: &str| $name::from_name(s).unwrap_or_default()))
            }
        }
    };
}

named_set! {
    /// Device class. A User-Agent that names no phone or tablet is a desktop.
    Device {
        Desktop => "desktop",
        Mobile => "mobile",
        Tablet => "tablet",
    } default Desktop
}

named_set! {
    /// Browser family: the contract's families, everything else `Other`.
    Browser {
        Chrome => "Chrome",
        Firefox => "Firefox",
        Safari => "Safari",
        Edge => "Edge",
        Other => "Other",
    } default Other
}

named_set! {
    /// Operating system family: the contract's families, everything else `Other`.
    Os {
        Windows => "Windows",
        MacOs => "macOS",
        Ios => "iOS",
        Android => "Android",
        Linux => "Linux",
        Other => "Other",
    } default Other
}

/// An ISO 3166-1 alpha-2 country code, or unknown (shown as `(unknown)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Country(Option<[u8; 2]>);

impl Country {
    /// What an unknown country is stored and shown as.
    pub const UNKNOWN_NAME: &'static str = "(unknown)";
    /// No country known.
    pub const UNKNOWN: Country = Country(None);

    /// Two ASCII letters, in either case, are a country; anything else is unknown.
    pub fn parse(raw: &str) -> Self {
        match raw.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Country(Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Country::UNKNOWN,
        }
    }

    pub fn is_known(self) -> bool {
        self.0.is_some()
    }

    /// `DE`, or `(unknown)`.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Two ASCII letters are always UTF-8.
            Some(code) => std::str::from_utf8(code).unwrap_or(Self::UNKNOWN_NAME),
            None => Self::UNKNOWN_NAME,
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(LenientVisitor(Country::parse))
    }
}

/// Reads a string into a value through `F`, which never fails.
struct LenientVisitor<F>(F);

impl<T, F: Fn(&str) -> T> de::Visitor<'_> for LenientVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_read_as_the_default() {
        for d in Device::ALL {
            assert_eq!(serde_json::from_str::<Device>(&serde_json::to_string(d).expect("ser")).expect("de"), *d, "case {d}");
        }
        for b in Browser::ALL {
            assert_eq!(
                serde_json::from_str::<Browser>(&serde_json::to_string(b).expect("ser")).expect("de"),
                *b,
                "case {b}"
            );
        }
        for o in Os::ALL {
            assert_eq!(serde_json::from_str::<Os>(&serde_json::to_string(o).expect("ser")).expect("de"), *o, "case {o}");
        }
        assert_eq!(serde_json::from_str::<Device>("\"smartwatch\"").expect("lenient"), Device::Desktop);
        assert_eq!(serde_json::from_str::<Browser>("\"Netscape\"").expect("lenient"), Browser::Other);
        assert_eq!(serde_json::from_str::<Os>("\"BeOS\"").expect("lenient"), Os::Other);
        assert_eq!(serde_json::to_string(&Os::MacOs).expect("ser"), "\"macOS\"");
    }

    #[test]
    fn countries_are_two_letters_or_unknown() {
        let cases = [
            ("DE", "DE"),
            ("us", "US"),
            ("", "(unknown)"),
            ("(unknown)", "(unknown)"),
            ("DEU", "(unknown)"),
            ("1A", "(unknown)"),
            ("é", "(unknown)"),
        ];
        for (raw, want) in cases {
            assert_eq!(Country::parse(raw).as_str(), want, "case {raw:?}");
            let json = format!("\"{raw}\"");
            assert_eq!(serde_json::from_str::<Country>(&json).expect("lenient").as_str(), want, "case {raw:?} from JSON");
        }
        assert_eq!(Country::default(), Country::UNKNOWN);
        assert_eq!(serde_json::to_string(&Country::parse("fr")).expect("ser"), "\"FR\"");
    }
}
