//! Vocabulary of the free-text resolver: English and romanised Hindi
//! (Hinglish) words for numbers, units, days, dayparts and fillers, and the
//! tokenizer. Spelling variants seen in chat/CRM notes are listed; anything
//! else is ignored as filler.

/// Splits into lowercase tokens: words, numbers (`3`, `1.5`, `3:30`, `3.30`),
/// with digit/letter runs separated (`3pm` -> `3`, `pm`; `10min` -> `10`,
/// `min`) and dots/apostrophes dropped from words (`a.m.` -> `am`,
/// `o'clock` -> `oclock`).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_is_num = false;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        let t = cur.trim_end_matches(['.', ':']);
        if !t.is_empty() {
            out.push(t.to_string());
        }
        cur.clear();
    };
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_digit() {
            if !cur.is_empty() && !cur_is_num {
                flush(&mut cur, &mut out);
            }
            cur_is_num = true;
            cur.push(c);
        } else if (c == ':' || c == '.') && cur_is_num {
            // Keep `3:30`, `1.5`; a trailing `.` ends the number.
            if chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
                cur.push(c);
            } else {
                flush(&mut cur, &mut out);
            }
        } else if c.is_alphabetic() {
            if cur_is_num {
                flush(&mut cur, &mut out);
            }
            cur_is_num = false;
            cur.push(c);
        } else if (c == '.' || c == '\'' || c == '’') && !cur_is_num {
            // `a.m.`, `o'clock`: part of the word.
        } else {
            flush(&mut cur, &mut out);
            cur_is_num = false;
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// A number word or digits, as a value (`1.5`, `twenty`, `paanch`).
pub fn simple_number(tok: &str) -> Option<f64> {
    if tok.bytes().all(|b| b.is_ascii_digit() || b == b'.') && tok.bytes().any(|b| b.is_ascii_digit()) {
        return tok.parse().ok();
    }
    let v = match tok {
        // English
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        // Hindi
        "ek" => 1,
        "do" | "doh" => 2,
        "teen" | "tin" => 3,
        "char" | "chaar" | "chār" => 4,
        "paanch" | "panch" | "paach" | "panch." => 5,
        "chhe" | "chhah" | "chah" | "che" | "cheh" | "chhey" => 6,
        "saat" | "sat" => 7,
        "aath" | "ath" => 8,
        "nau" => 9,
        "das" | "dus" => 10,
        "gyarah" | "gyara" | "gyaarah" => 11,
        "barah" | "bara" | "baarah" => 12,
        "pandrah" | "pandrah." | "pandra" => 15,
        "bees" | "bis" => 20,
        "pachees" | "pachis" | "pachchis" => 25,
        "tees" | "tis" => 30,
        "paintalis" | "paintaalis" => 45,
        "chalis" | "chaalis" => 40,
        "pachas" | "pachaas" => 50,
        _ => return None,
    };
    Some(f64::from(v))
}

/// English tens that combine with a following unit word (`twenty five`).
pub fn is_tens(v: f64) -> bool {
    matches!(v as i64, 20 | 30 | 40 | 50) && v.fract() == 0.0
}

/// Minutes per unit word.
pub fn unit_minutes(tok: &str) -> Option<f64> {
    Some(match tok {
        "m" | "min" | "mins" | "minute" | "minutes" | "mint" | "mints" | "minit" | "minat" | "minute." => 1.0,
        "h" | "hr" | "hrs" | "hour" | "hours" | "ghanta" | "ghante" | "ghanton" | "ghantay" | "ghante." | "gante"
        | "ghanta." | "ghnte" => 60.0,
        _ => return None,
    })
}

/// Day-count unit words (`2 days`, `do din`).
pub fn unit_days(tok: &str) -> Option<i64> {
    Some(match tok {
        "day" | "days" | "din" | "dino" | "dinon" => 1,
        "week" | "weeks" | "hafta" | "hafte" | "hafton" => 7,
        _ => return None,
    })
}

/// Words after an hour that make it a clock time (`3 baje`, `4 o'clock`).
pub fn is_oclock(tok: &str) -> bool {
    matches!(tok, "baje" | "bje" | "baj" | "bajay" | "bajey" | "oclock" | "clock")
}

/// Words that make what follows approximate.
pub fn is_around(tok: &str) -> bool {
    matches!(
        tok,
        "around"
            | "about"
            | "approx"
            | "approximately"
            | "roughly"
            | "ish"
            | "lagbhag"
            | "lagbhg"
            | "kareeb"
            | "karib"
            | "qareeb"
            | "kareeban"
            | "tak"
    )
}

/// Words after which a bare number is a clock hour (`at 4`, `by 5`).
pub fn introduces_hour(tok: &str) -> bool {
    matches!(tok, "at" | "by" | "@" | "after") || is_around(tok)
}

/// Weekday, 0 = Monday.
pub fn weekday(tok: &str) -> Option<u32> {
    Some(match tok {
        "monday" | "mon" | "somvar" | "somwar" | "somvaar" | "somwaar" => 0,
        "tuesday" | "tue" | "tues" | "mangalvar" | "mangalwar" | "mangalvaar" | "mangalwaar" => 1,
        "wednesday" | "wed" | "budhvar" | "budhwar" | "budhvaar" | "budhwaar" => 2,
        "thursday" | "thu" | "thur" | "thurs" | "guruvar" | "guruwar" | "guruvaar" | "veervar" | "brihaspativar"
        | "brihaspatiwar" => 3,
        "friday" | "fri" | "shukravar" | "shukrawar" | "shukravaar" | "shukrwar" => 4,
        "saturday" | "shanivar" | "shaniwar" | "shanivaar" | "shaniwaar" => 5,
        "sunday" | "sun" | "ravivar" | "raviwar" | "ravivaar" | "itwar" | "itvaar" | "itvar" | "etwar" | "itwaar" => 6,
        _ => return None,
    })
}

/// Parts of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daypart {
    Morning,
    Noon,
    Afternoon,
    AfterLunch,
    Evening,
    Night,
}

impl Daypart {
    /// Default local time (minutes after midnight) when no clock time is given.
    pub fn default_minute(self) -> u32 {
        match self {
            Daypart::Morning => 10 * 60,
            Daypart::Noon => 12 * 60,
            Daypart::Afternoon => 14 * 60,
            Daypart::AfterLunch => 14 * 60,
            Daypart::Evening => 18 * 60,
            Daypart::Night => 20 * 60,
        }
    }

    /// Local minutes `[start, end)` the daypart covers: asked for during it,
    /// "evening" means "now" rather than tomorrow.
    pub fn range(self) -> (u32, u32) {
        match self {
            Daypart::Morning => (5 * 60, 12 * 60),
            Daypart::Noon => (12 * 60, 13 * 60),
            Daypart::Afternoon | Daypart::AfterLunch => (12 * 60, 17 * 60),
            Daypart::Evening => (17 * 60, 21 * 60),
            Daypart::Night => (20 * 60, 24 * 60),
        }
    }
}

pub fn daypart(tok: &str) -> Option<Daypart> {
    Some(match tok {
        "morning" | "mrng" | "morn" | "subah" | "subha" | "subeh" | "subhe" | "sube" | "savere" | "savera"
        | "sawere" => Daypart::Morning,
        "noon" | "midday" => Daypart::Noon,
        "afternoon" | "dopahar" | "dopehar" | "dophar" | "dupahar" | "dopaher" | "dupehar" => Daypart::Afternoon,
        "evening" | "eve" | "shaam" | "sham" | "shyam" | "shaamko" => Daypart::Evening,
        "night" | "raat" | "rat" | "raath" => Daypart::Night,
        _ => return None,
    })
}

/// `today`/`aaj`, `tomorrow`/`kal`, `parso`: days from today.
pub fn day_offset(tok: &str) -> Option<i64> {
    Some(match tok {
        "today" | "aaj" | "aj" | "tonight" | "tonite" => 0,
        "tomorrow" | "tmrw" | "tmr" | "tomorow" | "tommorow" | "tommorrow" | "tomorrw" | "kal" | "kl" | "kall" => 1,
        "parso" | "parson" | "parsoon" | "parsu" | "overmorrow" => 2,
        _ => return None,
    })
}

/// `next Tuesday`, `agle mangalvar`, `coming Friday`.
pub fn is_next(tok: &str) -> bool {
    matches!(tok, "next" | "agle" | "agla" | "agli" | "coming" | "aane" | "aanewale" | "aanewala")
}
