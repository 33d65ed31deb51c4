//! Random sequences of schedule / reschedule / cancel / fire / report /
//! crash keep every index consistent with the records, and no attempt is
//! handed over twice.

#[path = "scheduler_util.rs"]
mod util;

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use redial::scheduler::book::ListFilter;
use redial::scheduler::model::{AttemptOutcome, CallbackChanges, CallbackId, NewCallback, Outcome, Status};
use util::*;

#[derive(Debug, Clone)]
enum Op {
    Schedule { phone: u8, queue: bool, ahead_s: Option<u32>, owned: bool },
    Reschedule { pick: usize, ahead_s: Option<u32> },
    Cancel { pick: usize },
    Advance { ms: u32 },
    Fire { free: u8, alice_free: bool },
    Report { pick: usize, outcome: usize },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, any::<bool>(), proptest::option::of(60u32..7_200), any::<bool>())
            .prop_map(|(phone, queue, ahead_s, owned)| Op::Schedule { phone, queue, ahead_s, owned }),
        1 => (any::<usize>(), proptest::option::of(60u32..7_200)).prop_map(|(pick, ahead_s)| Op::Reschedule { pick, ahead_s }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        3 => (0u32..7_200_000).prop_map(|ms| Op::Advance { ms }),
        3 => (0u8..4, any::<bool>()).prop_map(|(free, alice_free)| Op::Fire { free, alice_free }),
        3 => (any::<usize>(), 0usize..Outcome::ALL.len()).prop_map(|(pick, outcome)| Op::Report { pick, outcome }),
        1 => Just(Op::Crash),
    ]
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut h = Harness::new(MONDAY_NOON, config(|c| c.queues[1].retry_delay = std::time::Duration::from_secs(300)));
        let agents = Agents::new();
        let mut known: Vec<CallbackId> = Vec::new();
        let mut handed: HashSet<(CallbackId, u32)> = HashSet::new();
        let mut in_flight: HashMap<CallbackId, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Schedule { phone, queue, ahead_s, owned } => {
                    let req = NewCallback {
                        phone: format!("+1555000{phone}"),
                        queue: if queue { "q".into() } else { "default".into() },
                        scheduled_at: ahead_s.map(|s| h.now() + i64::from(s) * 1000),
                        owner: (owned && queue).then(|| "alice".to_string()),
                        ..Default::default()
                    };
                    if let Ok(cb) = h.book().schedule(req).await {
                        known.push(cb.id);
                    }
                }
                Op::Reschedule { pick, ahead_s } if !known.is_empty() => {
                    let id = known[pick % known.len()];
                    let ch = CallbackChanges { scheduled_at: Some(ahead_s.map(|s| h.now() + i64::from(s) * 1000)), ..Default::default() };
                    let _ = h.book().reschedule(id, ch).await;
                }
                Op::Cancel { pick } if !known.is_empty() => {
                    let _ = h.book().cancel(known[pick % known.len()]).await;
                }
                Op::Advance { ms } => h.clock.advance(i64::from(ms)),
                Op::Fire { free, alice_free } => {
                    agents.set_free("q", free as usize);
                    agents.set_free("default", free as usize);
                    agents.set_owner_free("alice", alice_free);
                    for d in h.fire(agents.clone()).await {
                        prop_assert!(handed.insert((d.callback.id, d.attempt)), "attempt handed over twice: {:?}", d);
                        prop_assert_eq!(d.callback.status, Status::InProgress);
                        prop_assert!(d.callback.due_at <= h.now());
                        in_flight.insert(d.callback.id, d.attempt);
                    }
                }
                Op::Report { pick, outcome } if !in_flight.is_empty() => {
                    let mut ids: Vec<_> = in_flight.keys().copied().collect();
                    ids.sort();
                    let id = ids[pick % ids.len()];
                    let n = in_flight.remove(&id).unwrap();
                    let r = h.book().report_outcome(id, n, AttemptOutcome::new(Outcome::ALL[outcome])).await;
                    prop_assert!(r.is_ok(), "{:?}", r);
                }
                Op::Crash => {
                    h.reopen();
                    // Every attempt in flight was closed by recovery.
                    for (id, n) in in_flight.drain() {
                        let cb = h.get(id).await;
                        prop_assert!(cb.status != Status::InProgress);
                        prop_assert_eq!(cb.attempts, n);
                    }
                }
                _ => {}
            }
            let check = h.book().check_consistency().await.unwrap();
            prop_assert!(check.is_ok(), "{:?}", check);
        }
        check_lists(&h, &known).await
    })
}

/// Every combination of the indexed filters, read a few rows a page, lists
/// exactly the callbacks a plain scan of the records selects, in id order.
async fn check_lists(h: &Harness, known: &[CallbackId]) -> Result<(), TestCaseError> {
    let mut all = Vec::new();
    for id in known {
        all.push(h.get(*id).await);
    }
    all.sort_by_key(|c| c.id);
    let statuses = std::iter::once(None).chain(Status::ALL.iter().copied().map(Some));
    for status in statuses {
        for queue in [None, Some("q"), Some("default")] {
            for owner in [None, Some("alice")] {
                for phone in [None, Some("+15550001")] {
                    let filter = ListFilter {
                        status,
                        queue: queue.map(str::to_string),
                        owner: owner.map(str::to_string),
                        phone: phone.map(str::to_string),
                        ..Default::default()
                    };
                    let want: Vec<CallbackId> = all
                        .iter()
                        .filter(|c| {
                            status.is_none_or(|s| c.status == s)
                                && queue.is_none_or(|q| c.queue == q)
                                && owner.is_none_or(|o| c.all_owners().contains(&o))
                                && phone.is_none_or(|p| c.phone == p)
                        })
                        .map(|c| c.id)
                        .collect();
                    let mut got = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let page = h.book().list(&filter, 3, cursor.as_deref()).await.unwrap();
                        got.extend(page.items.iter().map(|c| c.id));
                        match page.next_cursor {
                            Some(c) => cursor = Some(c),
                            None => break,
                        }
                    }
                    prop_assert_eq!(&got, &want, "filter {:?}", filter);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn indexes_stay_consistent(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
