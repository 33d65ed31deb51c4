//! Timer wheel tests: a BTreeMap model under random operations, cascading,
//! many items in one millisecond, past items, and a 30-day span.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

const T0: Millis = 1_790_000_000_000; // 2026-09-21, an arbitrary start

/// Polls at successive `next_deadline`s until `until`, as a driver would,
/// checking the bound holds; returns everything fired with its fire time.
fn drive(w: &mut TimerWheel<u32>, until: Millis) -> Vec<(u32, Millis)> {
    let mut fired = Vec::new();
    let mut wakes = 0;
    while let Some(d) = w.next_deadline() {
        if d > until {
            break;
        }
        for k in w.poll_expired(d) {
            fired.push((k, d));
        }
        wakes += 1;
        assert!(wakes < 1_000_000, "driver does not make progress");
    }
    fired
}

#[test]
fn past_items_fire_immediately_and_ties_keep_insertion_order() {
    let mut w = TimerWheel::new(T0);
    w.insert(1, T0 - 5_000);
    w.insert(2, T0 - 10);
    w.insert(3, T0 - 5_000);
    w.insert(4, T0);
    assert_eq!(w.len(), 4);
    assert!(w.next_deadline().unwrap() <= T0);
    assert_eq!(w.poll_expired(T0), vec![1, 3, 2, 4]);
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
    // Inserting in the past after the wheel has moved on.
    w.poll_expired(T0 + 10_000);
    w.insert(9, T0 + 1);
    assert_eq!(w.poll_expired(T0 + 10_000), vec![9]);
}

#[test]
fn reinsert_moves_and_remove_cancels() {
    let mut w = TimerWheel::new(T0);
    w.insert("a", T0 + 100);
    w.insert("b", T0 + 100);
    w.insert("a", T0 + 50_000); // moved
    assert_eq!(w.due_of(&"a"), Some(T0 + 50_000));
    assert_eq!(w.poll_expired(T0 + 100), vec!["b"]);
    assert!(w.remove(&"a"));
    assert!(!w.remove(&"a"));
    assert!(w.poll_expired(T0 + 100_000).is_empty());
    // Re-insert at the same due time ranks after the others.
    w.insert("x", T0 + 200_000);
    w.insert("y", T0 + 200_000);
    w.insert("x", T0 + 200_000);
    assert_eq!(w.poll_expired(T0 + 200_000), vec!["y", "x"]);
}

#[test]
fn cascades_through_every_level_exactly_on_time() {
    let mut w = TimerWheel::new(T0);
    // One item per level boundary, and one just either side.
    let dues: Vec<Millis> =
        [1i64, 63, 64, 65, 4095, 4096, 4097, 262_143, 262_144, 262_145, 16_777_215].iter().map(|d| T0 + d).collect();
    for (k, &d) in dues.iter().enumerate() {
        w.insert(k as u32, d);
    }
    let fired = drive(&mut w, T0 + 20_000_000);
    assert_eq!(fired.len(), dues.len());
    for (k, at) in fired {
        assert_eq!(at, dues[k as usize], "item {k} fired at the wrong time");
    }
    // A few wakes early at most, never late: the bound holds for each item.
    let mut w = TimerWheel::new(T0);
    w.insert(1, T0 + 16_000_000);
    let mut wakes = 0;
    while let Some(d) = w.next_deadline() {
        assert!(d <= T0 + 16_000_000);
        wakes += 1;
        if !w.poll_expired(d).is_empty() {
            break;
        }
    }
    assert!(wakes <= LEVELS + 1, "{wakes} wakes");
}

#[test]
fn hundred_thousand_items_in_one_millisecond() {
    let mut w = TimerWheel::new(T0);
    let due = T0 + 3_600_000; // an hour ahead: level 3
    for k in 0..100_000u32 {
        w.insert(k, due);
    }
    assert!(w.poll_expired(due - 1).is_empty());
    let fired = w.poll_expired(due);
    assert_eq!(fired, (0..100_000).collect::<Vec<_>>());
    assert!(w.is_empty());
}

#[test]
fn thirty_days_via_overflow() {
    let mut w = TimerWheel::new(T0);
    let day = 86_400_000;
    for d in 1..=30u32 {
        w.insert(d, T0 + i64::from(d) * day - 1);
    }
    w.insert(0, T0 + 30 * day); // exactly 30 days ahead
    assert_eq!(w.len(), 31);
    let fired = drive(&mut w, T0 + 31 * day);
    let keys: Vec<u32> = fired.iter().map(|f| f.0).collect();
    assert_eq!(keys, (1..=30).chain([0]).collect::<Vec<_>>());
    for (k, at) in fired {
        let want = if k == 0 { T0 + 30 * day } else { T0 + i64::from(k) * day - 1 };
        assert_eq!(at, want);
    }
    // Polling straight to a far time also returns everything in order.
    let mut w = TimerWheel::new(T0);
    w.insert(2, T0 + 20 * day);
    w.insert(1, T0 + 10 * day);
    assert_eq!(w.poll_expired(T0 + 25 * day), vec![1, 2]);
}

#[test]
fn origin_may_be_negative_or_zero() {
    let mut w = TimerWheel::new(-1_000);
    w.insert(1, -500);
    w.insert(2, i64::MIN);
    assert_eq!(w.poll_expired(-500), vec![2, 1]);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    Remove(u8),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, prop_oneof![
            -1_000i64..200,              // past / very near
            0i64..5_000,                 // levels 0-1
            0i64..20_000_000,            // up to the top level and just beyond
            0i64..(31 * 86_400_000),     // overflow
        ]).prop_map(|(k, d)| Op::Insert(k, d)),
        1 => (0u8..40).prop_map(Op::Remove),
        2 => prop_oneof![0i64..100, 0i64..100_000, 0i64..30_000_000, 0i64..(10 * 86_400_000)].prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_btreemap_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = TimerWheel::new(T0);
        let mut now = T0;
        let mut seq = 0u64;
        let mut by_time: BTreeMap<(Millis, u64), u8> = BTreeMap::new();
        let mut by_key: HashMap<u8, (Millis, u64)> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, d) => {
                    if let Some(old) = by_key.remove(&k) {
                        by_time.remove(&old);
                    }
                    by_time.insert((now + d, seq), k);
                    by_key.insert(k, (now + d, seq));
                    seq += 1;
                    w.insert(k, now + d);
                }
                Op::Remove(k) => {
                    let present = by_key.remove(&k).map(|old| by_time.remove(&old)).is_some();
                    prop_assert_eq!(w.remove(&k), present);
                }
                Op::Advance(d) => {
                    now += d;
                    let due: Vec<(Millis, u64)> = by_time.range(..(now + 1, 0)).map(|(t, _)| *t).collect();
                    let want: Vec<u8> = due.iter().map(|t| by_time.remove(t).unwrap()).collect();
                    for k in &want {
                        by_key.remove(k);
                    }
                    prop_assert_eq!(w.poll_expired(now), want);
                }
            }
            prop_assert_eq!(w.len(), by_key.len());
            // next_deadline never overshoots the earliest due item.
            match (w.next_deadline(), by_time.keys().next()) {
                (None, None) => {}
                (Some(d), Some(&(first, _))) => prop_assert!(d <= first.max(now), "deadline {} after due {}", d, first),
                (d, f) => prop_assert!(false, "deadline {:?} vs model {:?}", d, f),
            }
        }
    }
}

#[test]
fn a_clock_stepped_back_fires_late_never_early() {
    let mut w = TimerWheel::new(T0);
    w.insert(1, T0 + 1_000);
    assert!(w.poll_expired(T0 + 500).is_empty());
    // The clock steps back 400 ms; an item due "now" by the stepped clock waits.
    w.insert(2, T0 + 100);
    assert!(w.poll_expired(T0 + 100).is_empty());
    assert_eq!(w.next_deadline(), Some(T0 + 500));
    assert_eq!(w.poll_expired(T0 + 500), vec![2]);
    assert_eq!(w.poll_expired(T0 + 1_000), vec![1]);
}
