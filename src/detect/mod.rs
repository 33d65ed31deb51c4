//! Whether a conversation asked for a callback, and with which time words.
//!
//! Pure: a transcript in, a [`Detection`] out. Speaker labels ("Agent:",
//! "Customer:", "A:", "C:") decide who asked; without labels every line counts
//! as the customer's. Resolving the time words to an instant is the time
//! resolver's job, not this module's.

#[cfg(test)]
mod tests;

/// What the transcript says about a callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub requested: bool,
    /// The customer's (or the agent's promised) time words, verbatim.
    pub when: Option<String>,
    pub reason: Option<&'static str>,
    /// 0.9 for a clear ask, 0.8 for an agent's promise, 0.5 for "later"
    /// without "call", 0.3 for an implied one (busy, driving) with time words.
    pub confidence: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Speaker {
    Agent,
    Customer,
}

/// Phrases by which someone refuses any further call. A refusal anywhere wins.
const REFUSALS: &[&str] = &[
    "don't call", "dont call", "do not call", "stop calling", "never call", "not interested",
    "no need to call", "remove my number", "call mat", "mat karna call", "phone mat", "interest nahi",
    "interested nahi", "dobara call mat", "don't ring", "do not ring", "no callback", "no call back",
];

/// Phrases by which the customer asks to be called.
const ASKS: &[&str] = &[
    "call me back", "call me", "call back", "callback", "ring me", "call later", "call again",
    "try again", "try me", "call karna", "call kar", "call kariye", "call kijiye", "phone karna",
    "phone kar", "baat karte", "baat karenge", "baat kar lenge", "give me a call", "give me a ring",
    "call in", "call tomorrow", "call after", "call at", "call on", "call tonight",
];

/// Phrases by which the agent promises to call.
const PROMISES: &[&str] = &[
    "i'll call you", "i will call you", "we'll call you", "we will call you", "i'll call back",
    "i will call back", "we'll call back", "i'll give you a call", "we'll give you a call",
    "call you back", "call you", "i'll ring you", "main call karunga", "main call karungi",
    "hum call karenge", "call karta hoon", "call karti hoon",
];

/// Reasons, most specific first: (phrase, short reason).
const REASONS: &[(&str, &str)] = &[
    ("in a meeting", "in a meeting"), ("meeting mein", "in a meeting"), ("meeting me", "in a meeting"),
    ("driving", "driving"), ("gaadi chala", "driving"), ("busy", "busy"), ("not free", "not free right now"),
    ("free nahi", "not free right now"), ("can't talk", "not free right now"),
    ("cannot talk", "not free right now"), ("bad time", "not free right now"),
    ("at work", "at work"), ("office mein", "at work"), ("travelling", "travelling"),
    ("traveling", "travelling"), ("sleeping", "sleeping"), ("so raha", "sleeping"),
];

/// Words that make up a time expression, English and Hinglish.
const TIME_WORDS: &[&str] = &[
    "tomorrow", "today", "tonight", "morning", "afternoon", "evening", "night", "noon", "later",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "weekend",
    "week", "minutes", "minute", "mins", "hour", "hours", "am", "pm", "o'clock", "kal", "aaj",
    "subah", "shaam", "sham", "dopahar", "raat", "baje", "baad", "parso", "abhi", "thodi",
    "der", "ghante", "minute", "lunch", "next",
];

/// Words that join time words into one expression.
const JOINERS: &[&str] = &["at", "in", "the", "around", "after", "by", "this", "ko", "me", "mein", "an", "a", "half", "about", "tak", "ke", "before"];

/// Words that are time words only next to another time word.
const WEAK: &[&str] = &["abhi", "later", "next", "baad"];

pub fn detect(transcript: &str) -> Detection {
    let lines = utterances(transcript);
    let lower: Vec<(Speaker, String, &str)> =
        lines.iter().map(|(s, t)| (*s, t.to_lowercase(), *t)).collect();

    let none = Detection { requested: false, when: None, reason: None, confidence: 0.0 };
    if lower.iter().any(|(_, l, _)| REFUSALS.iter().any(|r| l.contains(r))) {
        return none;
    }
    let reason = lower
        .iter()
        .filter(|(s, _, _)| *s == Speaker::Customer)
        .find_map(|(_, l, _)| REASONS.iter().find(|(p, _)| contains_word(l, p)).map(|(_, r)| *r));
    let when_of = |speaker: Speaker| {
        lower.iter().filter(|(s, _, _)| *s == speaker).find_map(|(_, _, orig)| time_words(orig))
    };
    let customer_when = when_of(Speaker::Customer);

    let asked = lower.iter().any(|(s, l, _)| *s == Speaker::Customer && ASKS.iter().any(|p| contains_word(l, p)));
    if asked {
        return Detection { requested: true, when: customer_when, reason, confidence: 0.9 };
    }
    let promised =
        lower.iter().any(|(s, l, _)| *s == Speaker::Agent && PROMISES.iter().any(|p| contains_word(l, p)));
    if promised {
        let when = customer_when.or_else(|| when_of(Speaker::Agent));
        return Detection { requested: true, when, reason, confidence: 0.8 };
    }
    // "Talk later" and the like: a wish to continue, without the word call.
    let later = lower.iter().any(|(s, l, _)| {
        *s == Speaker::Customer
            && ["talk later", "speak later", "talk tomorrow", "speak tomorrow", "baad mein baat", "later please", "not now"]
                .iter()
                .any(|p| l.contains(p))
    });
    if later {
        return Detection { requested: true, when: customer_when, reason, confidence: 0.5 };
    }
    if reason.is_some() && customer_when.is_some() {
        return Detection { requested: true, when: customer_when, reason, confidence: 0.3 };
    }
    none
}

/// The transcript's lines with their speakers; unlabelled lines are the customer's.
fn utterances(transcript: &str) -> Vec<(Speaker, &str)> {
    transcript
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once(':') {
            Some((label, rest)) => match label.trim().to_ascii_lowercase().as_str() {
                "agent" | "a" | "bot" => (Speaker::Agent, rest.trim()),
                "customer" | "c" | "caller" => (Speaker::Customer, rest.trim()),
                _ => (Speaker::Customer, line),
            },
            None => (Speaker::Customer, line),
        })
        .collect()
}

/// Whether `phrase` occurs in `text` starting and ending at word boundaries.
fn contains_word(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The first run of time words in `line`, verbatim, with the numbers and
/// joiners between them ("tomorrow at 5 pm", "kal subah", "in 10 minutes").
fn time_words(line: &str) -> Option<String> {
    // Tokens with their byte spans in the original line.
    let tokens: Vec<(usize, usize, String)> = line
        .split_whitespace()
        .map(|w| {
            let start = w.as_ptr() as usize - line.as_ptr() as usize;
            let w = w.trim_end_matches(['.', ',', '!', '?', ';']);
            (start, start + w.len(), w.to_lowercase())
        })
        .collect();
    let is_time = |w: &str| {
        TIME_WORDS.contains(&w) || is_clock(w)
    };
    // Bare numbers and words like "later" count only beside a stronger word.
    let is_strong = |w: &str| {
        (TIME_WORDS.contains(&w) && !WEAK.contains(&w)) || is_clock(w) && !w.chars().all(|c| c.is_ascii_digit())
    };
    let mut i = 0;
    while i < tokens.len() {
        if is_time(&tokens[i].2) {
            // Extend over time words, numbers and joiners followed by more time words.
            let mut end = i;
            let mut j = i + 1;
            while j < tokens.len() {
                let w = &tokens[j].2;
                if is_time(w) {
                    end = j;
                } else if !JOINERS.contains(&w.as_str()) {
                    break;
                }
                j += 1;
            }
            let run = &tokens[i..=end];
            // A lone weak word ("abhi", "later") is not a time.
            let after_at = i > 0 && ["at", "by", "around", "after"].contains(&tokens[i - 1].2.as_str());
            if run.iter().any(|t| is_strong(&t.2)) || after_at && is_clock(&tokens[i].2) {
                // Take leading joiners such as "at", "in an", "in the" with it.
                let mut s = i;
                while s > 0
                    && ["at", "in", "after", "around", "by", "this", "next", "the", "an", "a"]
                        .contains(&tokens[s - 1].2.as_str())
                {
                    s -= 1;
                }
                return Some(line[tokens[s].0..tokens[end].1].to_string());
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    None
}

/// "5", "10", "5pm", "5:30", "17:00".
fn is_clock(w: &str) -> bool {
    let w = w.trim_end_matches("am").trim_end_matches("pm");
    !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == ':') && w.chars().next().is_some_and(|c| c.is_ascii_digit())
}
