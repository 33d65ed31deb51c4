//! The caller's number as E.164: from P-Asserted-Identity,
//! else the From user. Carriers send national or international forms
//! without `+`; only what is unambiguous is accepted.

use crate::e164::is_e164;

/// Normalises a SIP user part to E.164: `+` and 8–15 digits as is, or
/// digits with an international `00` prefix. Visual separators (`-`, `.`,
/// spaces, parentheses) are dropped. Anything else (anonymous, national
/// numbers without a country code) is `None`.
pub fn to_e164(user: &str) -> Option<String> {
    let cleaned: String = user.chars().filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')')).collect();
    let candidate = if let Some(rest) = cleaned.strip_prefix("00") {
        format!("+{rest}")
    } else {
        cleaned
    };
    is_e164(&candidate).then_some(candidate)
}

/// The caller's number: P-Asserted-Identity first, then From.
pub fn caller(asserted: Option<&str>, from: Option<&str>) -> Option<String> {
    asserted.and_then(to_e164).or_else(|| from.and_then(to_e164))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_what_is_unambiguous() {
        assert_eq!(to_e164("+15551230001").as_deref(), Some("+15551230001"));
        assert_eq!(to_e164("0015551230001").as_deref(), Some("+15551230001"));
        assert_eq!(to_e164("+1 (555) 123-0001").as_deref(), Some("+15551230001"));
        assert_eq!(to_e164("anonymous"), None);
        assert_eq!(to_e164("5551230001"), None, "no country code");
        assert_eq!(caller(Some("+447700900123"), Some("+15551230001")).as_deref(), Some("+447700900123"));
        assert_eq!(caller(Some("anonymous"), Some("+15551230001")).as_deref(), Some("+15551230001"));
    }
}
