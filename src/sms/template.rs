//! Text templates: `{when}` (the callback's due time in the customer's
//! timezone), `{queue}` and `{phone}`; any other `{...}` is a config error.

use chrono::TimeZone;

use crate::scheduler::model::Callback;

const PLACEHOLDERS: [&str; 3] = ["when", "queue", "phone"];

/// Longest template accepted (a text is short; long ones are split anyway).
const MAX_TEMPLATE: usize = 1_000;

/// Whether `text` is a usable template.
pub fn check(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("is empty".into());
    }
    if text.len() > MAX_TEMPLATE {
        return Err(format!("is longer than {MAX_TEMPLATE} bytes"));
    }
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { return Err("has a `{` without its `}`".into()) };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("has an unknown placeholder `{{{name}}}` (known: {{when}}, {{queue}}, {{phone}})"));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Fills `text` for `cb`; `{when}` is its due time in its own timezone
/// (the queue's when it has none), e.g. `Fri 4 Dec 15:00 CET`.
pub fn render(text: &str, cb: &Callback, queue_tz: chrono_tz::Tz) -> String {
    let tz: chrono_tz::Tz = cb.timezone.parse().unwrap_or(queue_tz);
    let when = tz.timestamp_millis_opt(cb.due_at).single().map(|t| t.format("%a %-d %b %H:%M %Z").to_string()).unwrap_or_default();
    text.replace("{when}", &when).replace("{queue}", &cb.queue).replace("{phone}", &cb.phone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_placeholders_pass() {
        assert!(check("Booked for {when} ({queue}) to {phone}").is_ok());
        assert!(check("no placeholders at all").is_ok());
        assert!(check("{whenever}").unwrap_err().contains("`{whenever}`"));
        assert!(check("open { brace").is_err());
        assert!(check("  ").is_err());
    }
}
