//! Tests for the window arithmetic: DST transitions in New York, London and
//! Lord Howe, far offsets, weekends, and a property test against sampling.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

const NY: Tz = chrono_tz::America::New_York;
const LON: Tz = chrono_tz::Europe::London;
const KOL: Tz = chrono_tz::Asia::Kolkata;

fn utc(s: &str) -> Millis {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

/// An unambiguous local time as an instant (panics on gap/fold: tests pick).
fn local(tz: Tz, s: &str) -> Millis {
    let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&n).single().unwrap().timestamp_millis()
}

fn hours(e: &[&str]) -> WeeklyHours {
    WeeklyHours::parse(e).unwrap()
}

#[test]
fn new_york_spring_forward_gap() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    let h = hours(&["01:30-02:30"]);
    assert_eq!(next_open(&h, NY, utc("2026-03-08T05:00:00Z")), utc("2026-03-08T06:30:00Z"));
    // The close at 02:30 does not exist: it closes at the first instant after the gap.
    assert_eq!(open_until(&h, NY, utc("2026-03-08T06:45:00Z")), Some(utc("2026-03-08T07:00:00Z")));
    assert!(!is_open(&h, NY, utc("2026-03-08T07:00:00Z")));
    assert_eq!(next_open(&h, NY, utc("2026-03-08T07:00:00Z")), utc("2026-03-09T05:30:00Z"));
    // An opening inside the gap opens when the gap ends.
    let h = hours(&["sun 02:30-05:00"]);
    assert_eq!(next_open(&h, NY, utc("2026-03-08T00:00:00Z")), utc("2026-03-08T07:00:00Z"));
    assert_eq!(open_until(&h, NY, utc("2026-03-08T07:00:00Z")), Some(utc("2026-03-08T09:00:00Z")));
    // An interval wholly inside the gap is empty that day: next week instead.
    let h = hours(&["sun 02:10-02:40"]);
    assert_eq!(next_open(&h, NY, utc("2026-03-08T00:00:00Z")), local(NY, "2026-03-15 02:10"));
}

#[test]
fn new_york_fall_back_fold() {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00Z); 01:xx happens twice.
    let h = hours(&["01:30-02:30"]);
    // Opens at the earlier 01:30 (EDT, 05:30Z), closes at 02:30 EST (07:30Z).
    assert_eq!(next_open(&h, NY, utc("2026-11-01T04:00:00Z")), utc("2026-11-01T05:30:00Z"));
    assert!(is_open(&h, NY, utc("2026-11-01T06:10:00Z"))); // 01:10 EST, second pass
    assert_eq!(open_until(&h, NY, utc("2026-11-01T05:40:00Z")), Some(utc("2026-11-01T07:30:00Z")));
    // A close in the fold closes at the later instant.
    let h = hours(&["sun 00:00-01:30"]);
    assert_eq!(open_until(&h, NY, utc("2026-11-01T04:00:00Z")), Some(utc("2026-11-01T06:30:00Z")));
    assert!(is_open(&h, NY, utc("2026-11-01T06:20:00Z")));
    assert!(!is_open(&h, NY, utc("2026-11-01T06:30:00Z")));
}

#[test]
fn london_both_transitions() {
    let h = hours(&["01:30-02:30"]);
    // 2026-03-29: 01:00 GMT -> 02:00 BST at 01:00Z. 01:30 does not exist.
    assert_eq!(next_open(&h, LON, utc("2026-03-28T23:00:00Z")), utc("2026-03-29T01:00:00Z"));
    assert_eq!(open_until(&h, LON, utc("2026-03-29T01:00:00Z")), Some(utc("2026-03-29T01:30:00Z")));
    assert!(!is_open(&h, LON, utc("2026-03-29T00:59:00Z")));
    // 2026-10-25: 02:00 BST -> 01:00 GMT at 01:00Z. Open 01:30 BST (00:30Z) to 02:30 GMT (02:30Z).
    assert_eq!(next_open(&h, LON, utc("2026-10-24T22:00:00Z")), utc("2026-10-25T00:30:00Z"));
    assert_eq!(open_until(&h, LON, utc("2026-10-25T00:30:00Z")), Some(utc("2026-10-25T02:30:00Z")));
    // Business hours keep their wall-clock time across the change.
    let h = hours(&["mon-fri 09:00-20:00"]);
    assert_eq!(next_open(&h, LON, utc("2026-10-23T20:00:00Z")), utc("2026-10-26T09:00:00Z"));
    assert_eq!(next_open(&h, LON, utc("2026-03-27T20:00:00Z")), utc("2026-03-30T08:00:00Z"));
}

#[test]
fn business_hours_and_weekends() {
    let h = hours(&["mon-fri 09:00-20:00", "sat 10:00-14:00"]);
    // Inside: unchanged.
    let wed_noon = local(NY, "2026-11-18 12:00");
    assert_eq!(next_open(&h, NY, wed_noon), wed_noon);
    assert_eq!(open_until(&h, NY, wed_noon), Some(local(NY, "2026-11-18 20:00")));
    // Friday evening -> Saturday 10:00; Saturday afternoon -> Monday 09:00.
    assert_eq!(next_open(&h, NY, local(NY, "2026-11-20 20:00")), local(NY, "2026-11-21 10:00"));
    assert_eq!(next_open(&h, NY, local(NY, "2026-11-21 14:00")), local(NY, "2026-11-23 09:00"));
    assert_eq!(open_until(&h, NY, local(NY, "2026-11-21 14:00")), None);
    // Weekdays only: Friday evening -> Monday, across the fall-back weekend.
    let h = hours(&["mon-fri 09:00-20:00"]);
    assert_eq!(next_open(&h, NY, local(NY, "2026-10-30 21:00")), utc("2026-11-02T14:00:00Z"));
    assert_eq!(next_open(&h, NY, local(NY, "2026-11-20 20:30")), local(NY, "2026-11-23 09:00"));
    // Early morning -> same day's opening.
    assert_eq!(next_open(&h, NY, local(NY, "2026-11-18 06:00")), local(NY, "2026-11-18 09:00"));
}

#[test]
fn whole_day_never_closes() {
    let h = hours(&["00:00-24:00"]);
    for at in [utc("2026-03-08T07:00:00Z"), utc("2026-11-01T06:30:00Z"), 0] {
        assert_eq!(next_open(&h, NY, at), at);
        assert!(is_open(&h, NY, at));
        assert_eq!(open_until(&h, NY, at), Some(NEVER_CLOSES));
    }
    // Whole days on weekdays only: Monday to Friday is one period.
    let h = hours(&["mon-fri 00:00-24:00"]);
    assert_eq!(open_until(&h, LON, local(LON, "2026-11-16 10:00")), Some(local(LON, "2026-11-21 00:00")));
}

#[test]
fn periods_touching_across_midnight_are_one() {
    let h = hours(&["mon-fri 20:00-24:00", "tue-sat 00:00-08:00"]);
    assert_eq!(open_until(&h, KOL, local(KOL, "2026-11-16 21:00")), Some(local(KOL, "2026-11-17 08:00")));
    assert_eq!(open_until(&h, KOL, local(KOL, "2026-11-17 03:00")), Some(local(KOL, "2026-11-17 08:00")));
    assert_eq!(open_until(&h, KOL, local(KOL, "2026-11-17 09:00")), None);
    // Across the New York fall-back night the period still runs to 08:00 EST.
    assert_eq!(open_until(&h, NY, local(NY, "2026-10-30 21:00")), Some(utc("2026-10-31T12:00:00Z")));
    let h = hours(&["sat 20:00-24:00", "sun 00:00-08:00"]);
    assert_eq!(open_until(&h, NY, local(NY, "2026-10-31 21:00")), Some(utc("2026-11-01T13:00:00Z")));
}

#[test]
fn far_timezones() {
    let h = hours(&["mon-fri 09:00-20:00"]);
    // Kolkata +05:30: Friday 20:30 IST -> Monday 09:00 IST (03:30Z).
    assert_eq!(next_open(&h, KOL, utc("2026-11-20T15:00:00Z")), utc("2026-11-23T03:30:00Z"));
    // Chatham +12:45 in July (standard time): Wed 00:45 local -> Wed 09:00 = Tue 20:15Z.
    let chatham = chrono_tz::Pacific::Chatham;
    assert_eq!(next_open(&h, chatham, utc("2026-07-14T12:00:00Z")), utc("2026-07-14T20:15:00Z"));
    // ... and +13:45 in January (daylight time).
    assert_eq!(next_open(&h, chatham, utc("2026-01-13T12:00:00Z")), utc("2026-01-13T19:15:00Z"));
    // Lord Howe: 30-minute DST. 2026-10-04 02:00 +10:30 -> 02:30 +11.
    let lh = chrono_tz::Australia::Lord_Howe;
    let h = hours(&["02:00-03:00"]);
    assert_eq!(next_open(&h, lh, utc("2026-10-03T14:00:00Z")), utc("2026-10-03T15:30:00Z"));
    assert_eq!(open_until(&h, lh, utc("2026-10-03T15:30:00Z")), Some(utc("2026-10-03T16:00:00Z")));
    // 2026-04-05 02:00 +11 -> 01:30 +10:30: 01:30-02:00 repeats.
    let h = hours(&["01:45-02:15"]);
    assert_eq!(next_open(&h, lh, utc("2026-04-04T12:00:00Z")), utc("2026-04-04T14:45:00Z"));
    assert_eq!(open_until(&h, lh, utc("2026-04-04T14:45:00Z")), Some(utc("2026-04-04T15:45:00Z")));
}

fn tz_strategy() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        chrono_tz::UTC,
        NY,
        LON,
        KOL,
        chrono_tz::Pacific::Chatham,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::America::Sao_Paulo,
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Pacific::Apia,
        chrono_tz::America::Santiago,
    ])
}

fn hours_strategy() -> impl Strategy<Value = WeeklyHours> {
    // 1-3 entries of (days mask, start, length) on a 5-minute grid.
    let entry = (1u8..128, 0u16..288, 1u16..=288).prop_map(|(mask, s, len)| {
        let days: Vec<&str> = (0..7).filter(|d| mask & (1 << d) != 0).map(|d| DAY_NAMES[d]).collect();
        let (s, e) = (s * 5, (s * 5 + len * 5).min(1440));
        format!("{} {:02}:{:02}-{:02}:{:02}", days.join(","), s / 60, s % 60, e / 60, e % 60)
    });
    prop::collection::vec(entry, 1..=3).prop_map(|e| WeeklyHours::parse(&e).unwrap())
}

/// Instants within two days of a 2026 DST change (New York, London, Lord
/// Howe, Chatham, Santiago, Sao Paulo has none since 2019) or anywhere in 2024-2027.
fn instant_strategy() -> impl Strategy<Value = Millis> {
    let changes = vec![
        utc("2026-03-08T07:00:00Z"),
        utc("2026-11-01T06:00:00Z"),
        utc("2026-03-29T01:00:00Z"),
        utc("2026-10-25T01:00:00Z"),
        utc("2026-10-03T15:30:00Z"),
        utc("2026-04-04T15:00:00Z"),
        utc("2026-04-04T14:00:00Z"),
        utc("2026-09-26T14:00:00Z"),
    ];
    prop_oneof![
        (prop::sample::select(changes), -172_800_000i64..172_800_000).prop_map(|(c, d)| c + d),
        1_704_067_200_000i64..1_830_297_600_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_open_is_the_first_open_instant(
        h in hours_strategy(),
        tz in tz_strategy(),
        at in instant_strategy(),
    ) {
        let r = next_open(&h, tz, at);
        prop_assert!(r >= at);
        prop_assert!(is_open(&h, tz, r), "result {r} not open");
        prop_assert!(r == at || !is_open(&h, tz, r - 1), "opening is not an edge");
        // Nothing open in between, sampled every minute (bounded: 9 days).
        let mut t = at;
        while t < r.min(at + 9 * 86_400_000) {
            prop_assert!(!is_open(&h, tz, t), "open at {t} before {r}");
            t += 60_000;
        }
        // The period that starts there ends where the window closes.
        let end = open_until(&h, tz, r).unwrap();
        if end != NEVER_CLOSES {
            prop_assert!(end > r);
            prop_assert!(is_open(&h, tz, end - 1));
            prop_assert!(!is_open(&h, tz, end));
            let mut t = r;
            while t < end.min(r + 9 * 86_400_000) {
                prop_assert!(is_open(&h, tz, t), "closed at {t} inside [{r},{end})");
                t += 60_000;
            }
        }
    }
}
