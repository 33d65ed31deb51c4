//! The IANA timezone a phone number most likely rings in.
//!
//! Single-zone countries map by country code. For the North American Numbering
//! Plan (+1) the three-digit area code decides, from [`nanp`]; in an area code
//! that spans several zones, the exchange (the next digits) does where the
//! numbering data places it in one. Countries that
//! span several zones with no finer data here (Australia, Brazil, Russia, ...)
//! return their most populous zone marked [`Precision::Approximate`]; a caller
//! that must not guess (legal calling hours) can then ignore it.

mod nanp;

use chrono_tz::Tz;

/// How much the returned zone can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// The number's region lies in this one zone.
    Exact,
    /// The region spans several zones; this is the most populous one.
    Approximate,
}

/// Country codes whose whole territory keeps one zone, longest codes first
/// where prefixes overlap (ITU-T E.164 assigned country codes).
const SINGLE_ZONE: &[(&str, Tz)] = &[
    ("20", Tz::Africa__Cairo),
    ("27", Tz::Africa__Johannesburg),
    ("30", Tz::Europe__Athens),
    ("31", Tz::Europe__Amsterdam),
    ("32", Tz::Europe__Brussels),
    ("33", Tz::Europe__Paris),
    ("34", Tz::Europe__Madrid),
    ("36", Tz::Europe__Budapest),
    ("39", Tz::Europe__Rome),
    ("40", Tz::Europe__Bucharest),
    ("41", Tz::Europe__Zurich),
    ("43", Tz::Europe__Vienna),
    ("44", Tz::Europe__London),
    ("45", Tz::Europe__Copenhagen),
    ("46", Tz::Europe__Stockholm),
    ("47", Tz::Europe__Oslo),
    ("48", Tz::Europe__Warsaw),
    ("49", Tz::Europe__Berlin),
    ("353", Tz::Europe__Dublin),
    ("351", Tz::Europe__Lisbon),
    ("358", Tz::Europe__Helsinki),
    ("380", Tz::Europe__Kiev),
    ("420", Tz::Europe__Prague),
    ("60", Tz::Asia__Kuala_Lumpur),
    ("63", Tz::Asia__Manila),
    ("64", Tz::Pacific__Auckland),
    ("65", Tz::Asia__Singapore),
    ("66", Tz::Asia__Bangkok),
    ("81", Tz::Asia__Tokyo),
    ("82", Tz::Asia__Seoul),
    ("84", Tz::Asia__Ho_Chi_Minh),
    ("86", Tz::Asia__Shanghai),
    ("90", Tz::Europe__Istanbul),
    ("91", Tz::Asia__Kolkata),
    ("92", Tz::Asia__Karachi),
    ("94", Tz::Asia__Colombo),
    ("234", Tz::Africa__Lagos),
    ("254", Tz::Africa__Nairobi),
    ("852", Tz::Asia__Hong_Kong),
    ("880", Tz::Asia__Dhaka),
    ("971", Tz::Asia__Dubai),
    ("972", Tz::Asia__Jerusalem),
    ("966", Tz::Asia__Riyadh),
    ("977", Tz::Asia__Kathmandu),
];

/// Countries spanning several zones, with their most populous zone.
const MULTI_ZONE: &[(&str, Tz)] = &[
    ("7", Tz::Europe__Moscow),
    ("52", Tz::America__Mexico_City),
    ("55", Tz::America__Sao_Paulo),
    ("61", Tz::Australia__Sydney),
    ("62", Tz::Asia__Jakarta),
];

/// The zone of an E.164 number (`+` then digits), or `None` when the number is
/// malformed or its country (or +1 area code) is not in the tables.
pub fn timezone_for(phone: &str) -> Option<(Tz, Precision)> {
    if !crate::e164::is_e164(phone) {
        return None;
    }
    let digits = &phone[1..];
    if let Some(national) = digits.strip_prefix('1') {
        // NANP numbers are a 3-digit area code and a 7-digit local number.
        if national.len() != 10 {
            return None;
        }
        return nanp::zone_of(national);
    }
    // Country codes are prefix-free, so the first match is the only one.
    for (cc, tz) in SINGLE_ZONE {
        if digits.starts_with(cc) {
            return Some((*tz, Precision::Exact));
        }
    }
    for (cc, tz) in MULTI_ZONE {
        if digits.starts_with(cc) {
            return Some((*tz, Precision::Approximate));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        let cases: &[(&str, Option<(Tz, Precision)>)] = &[
            ("+12125550100", Some((Tz::America__New_York, Precision::Exact))),
            ("+14155550100", Some((Tz::America__Los_Angeles, Precision::Exact))),
            ("+18085550100", Some((Tz::Pacific__Honolulu, Precision::Exact))),
            ("+13125550100", Some((Tz::America__Chicago, Precision::Exact))),
            ("+14165550100", Some((Tz::America__Toronto, Precision::Exact))),
            ("+442071838750", Some((Tz::Europe__London, Precision::Exact))),
            ("+919876543210", Some((Tz::Asia__Kolkata, Precision::Exact))),
            ("+61291234567", Some((Tz::Australia__Sydney, Precision::Approximate))),
            ("+35312345678", Some((Tz::Europe__Dublin, Precision::Exact))),
        ];
        for (phone, want) in cases {
            assert_eq!(timezone_for(phone), *want, "{phone}");
        }
    }

    #[test]
    fn in_an_area_code_spanning_zones_the_exchange_decides_where_the_data_places_it() {
        let cases: &[(&str, (Tz, Precision))] = &[
            // The Florida panhandle: Eastern, with Central exchanges.
            ("+18502005555", (Tz::America__Chicago, Precision::Exact)),
            // An exchange not listed: the code's own zone, which has exceptions.
            ("+18509995555", (Tz::America__New_York, Precision::Approximate)),
            // Michigan's Upper Peninsula and western Kentucky likewise.
            ("+19069325555", (Tz::America__Chicago, Precision::Exact)),
            ("+12702025555", (Tz::America__Chicago, Precision::Exact)),
            // Idaho: an exchange in Pacific time inside a Mountain block.
            ("+12083045555", (Tz::America__Los_Angeles, Precision::Exact)),
            ("+12083335555", (Tz::America__Denver, Precision::Approximate)),
            // An exchange listed with two zones keeps the code's approximate zone.
            ("+12083995555", (nanp_fallback("208"), Precision::Approximate)),
        ];
        for (phone, want) in cases {
            assert_eq!(timezone_for(phone), Some(*want), "{phone}");
        }
    }

    fn nanp_fallback(code: &str) -> Tz {
        // No listed prefix under `xxx0000`, so the code's approximate zone.
        let Some((tz, Precision::Approximate)) = nanp::zone_of(&format!("{code}0000000")) else { panic!("{code} is not approximate") };
        tz
    }

    #[test]
    fn unknown_or_malformed_is_none() {
        for phone in ["+19995550100", "+999123456", "+1", "12125550100", "", "+1212", "+18005550100"] {
            assert_eq!(timezone_for(phone), None, "{phone}");
        }
    }
}
