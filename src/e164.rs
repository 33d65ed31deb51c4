//! E.164 phone numbers (`+` then 2–15 digits, no leading zero).

/// Whether `s` is an E.164 number such as `+15550100`.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::is_e164;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["+15550100", "+442071838750", "+91", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in ["15550100", "+0123", "+1", "+1234567890123456", "+1 555", "+1-555", "", "+", "+١٢٣"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
