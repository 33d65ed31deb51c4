//! Reads of the book from redb snapshots: get, list with opaque cursors,
//! attempts, stats, and the consistency check the tests use.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec::{decode_attempt, decode_callback};
use super::stats::{origin_key, split_key, Counters};
use super::tables::*;
use super::{RedbBook, StoreError};
use crate::scheduler::engine::due_second;
use crate::scheduler::model::{Attempt, Callback, CallbackId, Origin, Stats, Status};

/// Largest page of a list.
pub const MAX_LIMIT: usize = 500;
/// A page stops after examining this many index rows even if it has fewer
/// items than asked (its cursor continues the scan), so a filter that
/// matches nothing never scans the whole book in one request.
const SCAN_BUDGET: usize = 20_000;

/// `GET /v1/callbacks` filters; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub queue: Option<String>,
    pub owner: Option<String>,
    pub phone: Option<String>,
    pub origin: Option<Origin>,
    /// Words the reason contains (any case).
    pub reason: Option<String>,
    /// Only callbacks with at least this confidence.
    pub min_confidence: Option<crate::scheduler::model::Confidence>,
}

impl ListFilter {
    pub fn matches(&self, c: &Callback) -> bool {
        self.status.is_none_or(|s| s == c.status)
            && self.queue.as_ref().is_none_or(|q| *q == c.queue)
            && self.owner.as_ref().is_none_or(|o| c.all_owners().contains(&o.as_str()))
            && self.phone.as_ref().is_none_or(|p| *p == c.phone)
            && self.origin.is_none_or(|o| o == c.origin)
            && self.reason.as_ref().is_none_or(|r| c.reason.as_ref().is_some_and(|cr| cr.to_lowercase().contains(&r.to_lowercase())))
            && self.min_confidence.is_none_or(|m| c.confidence.is_some_and(|v| v >= m))
    }
}

/// One page of a list, oldest first. `next_cursor` is opaque; `None` at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Cursors are the id of the last row examined, in the id's own rendering.
fn cursor_of(id: u64) -> String {
    CallbackId(id).to_string()
}

/// An invalid cursor restarts nowhere: it is treated as past the end.
fn parse_cursor(c: Option<&str>) -> Option<u64> {
    match c {
        None => Some(0),
        Some(s) => CallbackId::parse(s).and_then(|id| id.0.checked_add(1)),
    }
}

/// A mismatch between the records and an index (tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: {problem} ({count} rows)")]
pub struct Inconsistency {
    pub table: &'static str,
    pub problem: &'static str,
    pub count: usize,
}

type IdStream<'a> = Box<dyn Iterator<Item = Result<u64, StoreError>> + 'a>;

/// What [`Intersection::next`] found.
enum Joined {
    /// An id present in every stream.
    Id(u64),
    /// A stream ended: no further id is in all of them.
    End,
    /// The budget of index rows ran out; no id below `decided_below` that
    /// was not returned is in every stream.
    Budget { decided_below: u64 },
}

/// The ids common to several ascending id streams (one per index a filter
/// uses), found by stepping every stream that lags behind the furthest
/// head: index rows only, so a selective combination of filters costs
/// key reads, not record decodes.
struct Intersection<'a> {
    streams: Vec<IdStream<'a>>,
    heads: Vec<Option<u64>>,
    examined: usize,
}

impl<'a> Intersection<'a> {
    fn new(streams: Vec<IdStream<'a>>) -> Self {
        let heads = vec![None; streams.len()];
        Intersection { streams, heads, examined: 0 }
    }

    fn step(&mut self, i: usize) -> Result<Option<u64>, StoreError> {
        self.examined += 1;
        let next = self.streams[i].next().transpose()?;
        self.heads[i] = next;
        Ok(next)
    }

    /// The next common id, examining at most `budget` index rows in all.
    fn next(&mut self, budget: usize) -> Result<Joined, StoreError> {
        // Move every stream one row on: past the id the previous call
        // returned (all heads agree on it), or onto its first row.
        if self.examined >= budget {
            let decided_below = self.heads.iter().flatten().copied().max().map_or(0, |h| h + 1);
            return Ok(Joined::Budget { decided_below });
        }
        for i in 0..self.streams.len() {
            if self.step(i)?.is_none() {
                return Ok(Joined::End);
            }
        }
        loop {
            let target = self.heads.iter().flatten().copied().max().unwrap_or(0);
            let mut agreed = true;
            for i in 0..self.streams.len() {
                while self.heads[i].is_some_and(|h| h < target) {
                    if self.examined >= budget {
                        return Ok(Joined::Budget { decided_below: target });
                    }
                    if self.step(i)?.is_none() {
                        return Ok(Joined::End);
                    }
                }
                if self.heads[i] != Some(target) {
                    agreed = false;
                }
            }
            if agreed {
                return Ok(Joined::Id(target));
            }
        }
    }
}

impl RedbBook {
    fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// The callback with this id.
    pub fn get(&self, id: CallbackId) -> Result<Option<Callback>, StoreError> {
        let r = self.read()?;
        let t = r.open_table(CALLBACKS)?;
        let v = t.get(id.0)?;
        v.map(|v| decode_callback(v.value()).map_err(|source| StoreError::Decode { id, source })).transpose()
    }

    /// The active (`scheduled` or `in_progress`) callback for `phone` in
    /// `queue`, if any: at most one exists.
    pub fn find_active(&self, phone: &str, queue: &str) -> Result<Option<Callback>, StoreError> {
        let r = self.read()?;
        let Some(id) = r.open_table(ACTIVE)?.get((phone, queue))?.map(|v| CallbackId(v.value())) else { return Ok(None) };
        let t = r.open_table(CALLBACKS)?;
        let v = t.get(id.0)?;
        v.map(|v| decode_callback(v.value()).map_err(|source| StoreError::Decode { id, source })).transpose()
    }

    /// The callback with this id as the API gives it; any unknown shape is `None`.
    pub fn get_str(&self, id: &str) -> Result<Option<Callback>, StoreError> {
        match CallbackId::parse(id) {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    /// Lists callbacks matching `filter`, oldest first, `limit` (1..=500)
    /// per page, continuing after `cursor`.
    pub fn list(&self, filter: &ListFilter, limit: usize, cursor: Option<&str>) -> Result<Page<Callback>, StoreError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let Some(from) = parse_cursor(cursor) else { return Ok(Page { items: vec![], next_cursor: None }) };
        let r = self.read()?;
        let records = r.open_table(CALLBACKS)?;
        // Every indexed filter contributes its index range (ids ascending);
        // only ids in all of them are decoded and checked against the rest.
        let mut streams: Vec<IdStream> = Vec::new();
        if let Some(p) = &filter.phone {
            let t = r.open_table(BY_PHONE)?;
            streams.push(Box::new(t.range((p.as_str(), from)..=(p.as_str(), u64::MAX))?.map(|e| Ok(e?.0.value().1))));
        }
        if let Some(o) = &filter.owner {
            let t = r.open_table(BY_OWNER)?;
            streams.push(Box::new(t.range((o.as_str(), from)..=(o.as_str(), u64::MAX))?.map(|e| Ok(e?.0.value().1))));
        }
        if let Some(s) = filter.status {
            let t = r.open_table(BY_STATUS)?;
            streams.push(Box::new(t.range((s.code(), from)..=(s.code(), u64::MAX))?.map(|e| Ok(e?.0.value().1))));
        }
        if let Some(q) = &filter.queue {
            let t = r.open_table(BY_QUEUE)?;
            streams.push(Box::new(t.range((q.as_str(), from)..=(q.as_str(), u64::MAX))?.map(|e| Ok(e?.0.value().1))));
        }
        if streams.is_empty() {
            streams.push(Box::new(records.range(from..)?.map(|e| Ok(e?.0.value()))));
        }
        let mut join = Intersection::new(streams);
        let mut items = Vec::new();
        let mut last = None;
        let mut exhausted = true;
        loop {
            if items.len() == limit {
                exhausted = false;
                break;
            }
            match join.next(SCAN_BUDGET)? {
                Joined::Id(id) => {
                    last = Some(id);
                    if let Some(v) = records.get(id)? {
                        let c = decode_callback(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(id), source })?;
                        if filter.matches(&c) {
                            items.push(c);
                        }
                    }
                }
                Joined::End => break,
                Joined::Budget { decided_below } => {
                    exhausted = false;
                    // Every id below the streams' furthest head is in some
                    // stream's gap, so no match: the next page starts there.
                    if let Some(below) = decided_below.checked_sub(1).filter(|b| last.is_none_or(|l| *b > l)) {
                        last = Some(below);
                    }
                    break;
                }
            }
        }
        let next_cursor = if exhausted { None } else { last.map(cursor_of) };
        Ok(Page { items, next_cursor })
    }

    /// Every attempt of a callback, in order; `None` for an unknown id.
    pub fn attempts(&self, id: CallbackId) -> Result<Option<Vec<Attempt>>, StoreError> {
        let r = self.read()?;
        if r.open_table(CALLBACKS)?.get(id.0)?.is_none() {
            return Ok(None);
        }
        let t = r.open_table(ATTEMPTS)?;
        let mut out = Vec::new();
        for e in t.range((id.0, 0)..=(id.0, u32::MAX))? {
            let (_, v) = e?;
            out.push(decode_attempt(v.value()).map_err(|source| StoreError::Decode { id, source })?);
        }
        Ok(Some(out))
    }

    /// Counters for one queue, or all queues together.
    pub fn stats(&self, queue: Option<&str>) -> Result<Stats, StoreError> {
        Ok(self.stats_by_origin(queue, None)?.0)
    }

    /// Counters for one queue or all, for one origin or all, and the split
    /// by origin of the same queues (every origin, zero or not).
    pub fn stats_by_origin(&self, queue: Option<&str>, origin: Option<Origin>) -> Result<(Stats, Vec<(Origin, Stats)>), StoreError> {
        let r = self.read()?;
        let t = r.open_table(STATS)?;
        let mut split: Vec<(Origin, Counters)> = Origin::ALL.iter().map(|o| (*o, Counters::default())).collect();
        let mut total = Counters::default();
        for e in t.iter()? {
            let (k, v) = e?;
            let (q, o) = split_key(k.value());
            if queue.is_some_and(|want| want != q) {
                continue;
            }
            let c = Counters::decode(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(0), source })?;
            match o {
                None if origin.is_none() => total.add(&c),
                None => {}
                Some(o) => {
                    if let Some(slot) = split.iter_mut().find(|(x, _)| *x == o) {
                        slot.1.add(&c);
                    }
                    if origin == Some(o) {
                        total.add(&c);
                    }
                }
            }
        }
        Ok((total.stats(), split.into_iter().map(|(o, c)| (o, c.stats())).collect()))
    }

    /// Checks every index and counter against the records; used by tests
    /// after random operations and crashes.
    pub fn check_consistency(&self) -> Result<Result<(), Vec<Inconsistency>>, StoreError> {
        let r = self.read()?;
        let mut due = BTreeSet::new();
        let mut status = BTreeSet::new();
        let mut queue = BTreeSet::new();
        let mut owner = BTreeSet::new();
        let mut phone = BTreeSet::new();
        let mut active = BTreeMap::new();
        let mut by_interaction = BTreeSet::new();
        let mut counters: HashMap<String, Counters> = HashMap::new();
        let mut active_dupes = 0;
        for e in r.open_table(CALLBACKS)?.iter()? {
            let (k, v) = e?;
            let id = k.value();
            let c = decode_callback(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(id), source })?;
            if c.status == Status::Scheduled {
                due.insert(((due_second(c.due_at).max(0)) as u64, id, c.due_at.max(0) as u64));
            }
            status.insert((c.status.code(), id));
            queue.insert((c.queue.clone(), id));
            phone.insert((c.phone.clone(), id));
            for o in c.all_owners() {
                owner.insert((o.to_string(), id));
            }
            if let (true, Some(i)) = (c.status.is_active(), &c.interaction_id) {
                by_interaction.insert((i.clone(), id));
            }
            if c.status.is_active() {
                if let Some((other, other_status)) = active.insert((c.phone.clone(), c.queue.clone()), (id, c.status)) {
                    // A follow-up (scheduled, newer) booked during the call of
                    // the one in progress holds the slot; anything else is a duplicate.
                    let (newer, older_status) = if other > id { ((other, other_status), c.status) } else { ((id, c.status), other_status) };
                    if newer.1 != Status::Scheduled || older_status != Status::InProgress {
                        active_dupes += 1;
                    }
                    active.insert((c.phone.clone(), c.queue.clone()), newer);
                }
            }
            for key in [c.queue.clone(), origin_key(&c.queue, c.origin)] {
                let ct = counters.entry(key).or_default();
                ct.requested += 1;
                ct.by_status[c.status.code() as usize] += 1;
                ct.delay_sum_ms += c.first_due_at - c.created_at;
            }
        }
        let mut bad = Vec::new();
        let mut cmp = |table: &'static str, same: bool| {
            if !same {
                bad.push(Inconsistency { table, problem: "differs from the records", count: 1 });
            }
        };
        let got_due: BTreeSet<(u64, u64, u64)> =
            r.open_table(DUE)?.iter()?.map(|e| e.map(|(k, v)| (k.value().0, k.value().1, v.value()))).collect::<Result<_, _>>()?;
        let mut got_due = got_due;
        // Staged far-future entries (tables::DUE_LATER) are part of the index.
        for e in r.open_table(DUE_LATER)?.iter()? {
            let (k, v) = e?;
            got_due.insert((due_second(v.value() as i64).max(0) as u64, k.value(), v.value()));
        }
        cmp("due", got_due == due);
        let got: BTreeSet<(u8, u64)> = r.open_table(BY_STATUS)?.iter()?.map(|e| e.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
        cmp("by_status", got == status);
        let strs = |d: redb::TableDefinition<(&str, u64), ()>| -> Result<BTreeSet<(String, u64)>, StoreError> {
            Ok(r.open_table(d)?.iter()?.map(|e| e.map(|(k, _)| (k.value().0.to_string(), k.value().1))).collect::<Result<_, _>>()?)
        };
        cmp("by_queue", strs(BY_QUEUE)? == queue);
        cmp("by_owner", strs(BY_OWNER)? == owner);
        cmp("by_phone", strs(BY_PHONE)? == phone);
        // Absent on a file no writer of this build has touched yet.
        let got_interaction = match r.open_table(ACTIVE_BY_INTERACTION) {
            Err(redb::TableError::TableDoesNotExist(_)) => BTreeSet::new(),
            _ => strs(ACTIVE_BY_INTERACTION)?,
        };
        cmp("active_by_interaction", got_interaction == by_interaction);
        let got_active: BTreeMap<(String, String), u64> = r
            .open_table(ACTIVE)?
            .iter()?
            .map(|e| e.map(|(k, v)| ((k.value().0.to_string(), k.value().1.to_string()), v.value())))
            .collect::<Result<_, _>>()?;
        let active: BTreeMap<(String, String), u64> = active.into_iter().map(|(k, (id, _))| (k, id)).collect();
        cmp("active", got_active == active && active_dupes == 0);
        let mut got_counters = HashMap::new();
        for e in r.open_table(STATS)?.iter()? {
            let (k, v) = e?;
            let c = Counters::decode(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(0), source })?;
            if c != Counters::default() {
                got_counters.insert(k.value().to_string(), c);
            }
        }
        cmp("stats", got_counters == counters);
        let mut orphans = 0;
        let records = r.open_table(CALLBACKS)?;
        for e in r.open_table(ATTEMPTS)?.iter()? {
            let (k, _) = e?;
            let (id, n) = k.value();
            match records.get(id)? {
                Some(v) => {
                    let c = decode_callback(v.value()).map_err(|source| StoreError::Decode { id: CallbackId(id), source })?;
                    if n == 0 || n > c.attempts {
                        orphans += 1;
                    }
                }
                None => orphans += 1,
            }
        }
        if orphans > 0 {
            bad.push(Inconsistency { table: "attempts", problem: "rows without a matching attempt", count: orphans });
        }
        Ok(if bad.is_empty() { Ok(()) } else { Err(bad) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(lists: &[&[u64]]) -> Intersection<'static> {
        let streams = lists.iter().map(|l| Box::new(l.to_vec().into_iter().map(Ok)) as IdStream<'static>).collect();
        Intersection::new(streams)
    }

    fn all(j: &mut Intersection, budget: usize) -> (Vec<u64>, Option<u64>) {
        let mut out = vec![];
        loop {
            match j.next(budget).unwrap() {
                Joined::Id(id) => out.push(id),
                Joined::End => return (out, None),
                Joined::Budget { decided_below } => return (out, Some(decided_below)),
            }
        }
    }

    #[test]
    fn intersection_finds_the_ids_in_every_stream() {
        let mut j = join(&[&[1, 3, 4, 7, 9, 12], &[2, 3, 7, 8, 12, 15], &[3, 5, 7, 12]]);
        assert_eq!(all(&mut j, usize::MAX), (vec![3, 7, 12], None));
        let mut one = join(&[&[4, 5, 6]]);
        assert_eq!(all(&mut one, usize::MAX), (vec![4, 5, 6], None));
        let mut none = join(&[&[1, 2], &[]]);
        assert_eq!(all(&mut none, usize::MAX), (vec![], None));
    }

    #[test]
    fn intersection_stops_at_its_budget_with_what_it_has_decided() {
        // Sparse: the second stream's only id is far past the first's rows.
        let dense: Vec<u64> = (1..=100).collect();
        let mut j = join(&[&dense, &[90]]);
        let (found, stop) = all(&mut j, 10);
        assert!(found.is_empty());
        // Everything below the furthest head (90) is known not to match.
        assert_eq!(stop, Some(90));
        // A single stream is bounded too.
        let mut one = join(&[&dense]);
        let (found, stop) = all(&mut one, 10);
        assert_eq!(found, (1..=10).collect::<Vec<_>>());
        assert_eq!(stop, Some(11));
    }
}
