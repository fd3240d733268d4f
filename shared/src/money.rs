//! Revenue (v3): the currencies an event and a site may name, and how amounts are kept.
//!
//! An `event` may carry `props.revenue` (a number from 0 to 1e9) and `props.currency` (an ISO
//! 4217 code; else the site's `currency`, `USD` by default). Sums are kept per currency, never
//! converted, in thousandths of the unit ([`to_milli`]), which every currency's minor unit
//! divides: integer sums add up exactly whatever the order.

/// The currency of a site that names none.
pub const DEFAULT_CURRENCY: &str = "USD";
/// The largest revenue one event may carry.
pub const MAX_REVENUE: f64 = 1e9;
/// The reserved property names.
pub const REVENUE_PROP: &str = "revenue";
pub const CURRENCY_PROP: &str = "currency";

/// ISO 4217 codes, current and recently withdrawn (HRK, SLL, ZWL: data sent while they were
/// current still reads), space-separated.
const CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL \
BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB \
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS \
KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP \
SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED \
VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

/// True for an ISO 4217 code, as written there (three capital letters).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) && CODES.split(' ').any(|c| c == code)
}

/// An amount in thousandths of its unit (0 to 1e12), rounded half away from zero.
pub fn to_milli(amount: f64) -> u64 {
    (amount.clamp(0.0, MAX_REVENUE) * 1000.0).round() as u64
}

/// Thousandths back to the unit, as the stats show them.
pub fn from_milli(milli: u64) -> f64 {
    milli as f64 / 1000.0
}

/// `serde(default)` of a currency field.
pub fn default_currency() -> String {
    DEFAULT_CURRENCY.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_iso_4217_codes_only() {
        for good in ["USD", "EUR", "JPY", "BHD", "CHF"] {
            assert!(is_currency(good), "{good}");
        }
        for bad in ["usd", "US", "USDD", "ABC", "", "EU ", "XYZ"] {
            assert!(!is_currency(bad), "{bad:?}");
        }
    }

    #[test]
    fn amounts_keep_three_decimals() {
        assert_eq!(to_milli(19.99), 19_990);
        assert_eq!(to_milli(0.0005), 1);
        assert_eq!(to_milli(1e9), 1_000_000_000_000);
        assert_eq!(from_milli(19_990), 19.99);
    }
}
