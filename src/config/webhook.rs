//! `[[webhooks]]`: where events are POSTed, signed with a shared secret.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::problem::Collector;
use crate::events::Kind;

/// One webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// `http://` or `https://` URL, validated at load.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Redial-Signature`.
    pub secret: String,
    pub events: EventFilter,
}

/// Which event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// `["*"]`: every type.
    All,
    Only(BTreeSet<&'static str>),
}

impl EventFilter {
    pub fn wants(&self, kind: Kind) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Only(names) => names.contains(kind.name()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    url: String,
    secret: String,
    #[serde(default)]
    events: Option<Vec<String>>,
}

/// Longest URL accepted; a receiver's address, not a document.
const MAX_URL: usize = 2048;

pub(super) fn validate(i: usize, raw: RawWebhook, c: &mut Collector<'_>) -> Option<Webhook> {
    let mut ok = true;
    if let Err(why) = check_url(&raw.url) {
        c.push(format!("webhooks[{i}].url"), why);
        ok = false;
    }
    if raw.secret.is_empty() {
        c.push(format!("webhooks[{i}].secret"), "must not be empty: receivers verify the signature with it");
        ok = false;
    }
    let events = match raw.events.as_deref() {
        None => EventFilter::All,
        Some(list) if list.iter().any(|e| e == "*") => EventFilter::All,
        Some([]) => {
            c.push(format!("webhooks[{i}].events"), "is empty: list event types, or [\"*\"] for all");
            ok = false;
            EventFilter::All
        }
        Some(list) => {
            let mut names = BTreeSet::new();
            for (j, name) in list.iter().enumerate() {
                match Kind::parse(name) {
                    Some(k) => {
                        names.insert(k.name());
                    }
                    None => {
                        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                        c.push(format!("webhooks[{i}].events[{j}]"), format!("unknown event type `{name}`; known: {}", known.join(", ")));
                        ok = false;
                    }
                }
            }
            EventFilter::Only(names)
        }
    };
    ok.then_some(Webhook { url: raw.url, secret: raw.secret, events })
}

/// An absolute `http`/`https` URL with a host and no credentials or fragment.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("longer than {MAX_URL} characters"));
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => return Err(format!("scheme `{other}` is not supported; use http:// or https://")),
        None => return Err(format!("`{url}` is not an absolute URL (http://host/path)")),
    }
    let Some(auth) = uri.authority() else { return Err(format!("`{url}` has no host")) };
    if auth.host().is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if auth.as_str().contains('@') {
        return Err("credentials in the URL are not supported; the signature authenticates redial".into());
    }
    if url.contains('#') {
        return Err("a URL fragment is never sent; remove it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn run(raw: RawWebhook) -> (Option<Webhook>, Vec<String>) {
        let mut problems = Vec::new();
        let mut c = Collector { file: Path::new("redial.toml"), problems: &mut problems };
        let w = validate(0, raw, &mut c);
        (w, problems.iter().map(|p| p.to_string()).collect())
    }

    fn raw(url: &str, events: Option<Vec<&str>>) -> RawWebhook {
        RawWebhook { url: url.into(), secret: "s".into(), events: events.map(|v| v.into_iter().map(String::from).collect()) }
    }

    #[test]
    fn a_good_endpoint_with_a_list_of_types() {
        let (w, p) = run(raw("https://crm.example/hooks/redial", Some(vec!["callback.completed", "attempt.ended"])));
        assert!(p.is_empty(), "{p:?}");
        let w = w.unwrap();
        assert!(w.events.wants(Kind::AttemptEnded));
        assert!(!w.events.wants(Kind::CallbackCreated));
        let (w, _) = run(raw("http://127.0.0.1:9/x", Some(vec!["*"])));
        assert!(w.unwrap().events.wants(Kind::TrunkState));
    }

    #[test]
    fn bad_urls_and_types_are_named_by_key() {
        for (url, why) in [
            ("ftp://h/x", "scheme `ftp`"),
            ("/relative", "not an absolute URL"),
            ("http://user:pw@h/x", "credentials"),
            ("not a url", "is not a URL"),
            ("http://h/x#frag", "fragment"),
        ] {
            let (w, p) = run(raw(url, None));
            assert!(w.is_none(), "{url}");
            assert!(p.len() == 1 && p[0].starts_with("redial.toml: webhooks[0].url: ") && p[0].contains(why), "{url}: {p:?}");
        }
        let (w, p) = run(raw("http://h/x", Some(vec!["callback.completed", "callback.done"])));
        assert!(w.is_none());
        assert!(p[0].starts_with("redial.toml: webhooks[0].events[1]: unknown event type `callback.done`"), "{p:?}");
        let (_, p) = run(RawWebhook { url: "http://h/".into(), secret: String::new(), events: None });
        assert!(p[0].contains("webhooks[0].secret"), "{p:?}");
    }
}
