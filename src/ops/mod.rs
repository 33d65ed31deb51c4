//! Application operations on callbacks and agents, shared by the REST API
//! and the web console: one code path for the rules, the scopes, agent
//! visibility and the audit log.
//!
//! Every operation takes an [`Actor`] (a token with its scopes, or a signed-in
//! agent), checks what that actor may see and do, calls the book, and writes
//! one audit entry per change. Refusals are [`OpsError`]s, which the API and
//! the console each turn into their answer (same message, code and field).
//!
//! - [`error`]: the refusals. [`request`]: the create and change requests.

pub mod abandoned;
pub mod error;
pub mod request;

use std::sync::Arc;

use chrono_tz::Tz;

use crate::agents::{AgentInfo, AgentState, Registry};
pub use self::error::OpsError;
use self::request::{parse_time, ChangeCallback, CreateCallback, MAX_WHEN};
use crate::calls::LiveCalls;
use crate::clock::{rfc3339, Clock, Millis};
use crate::config::Scope;
use crate::scheduler::model::{Callback, CallbackId, Status, WhenResolution};
use crate::scheduler::book::{AuditEntry, AuditNote, Book, ListFilter};
use crate::scheduler::when;

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API token (or a supervisor signed in with one).
    Token { name: String, scopes: Vec<Scope> },
    /// An agent signed in with its id and SIP password.
    Agent { id: String, queues: Vec<String> },
}

impl Actor {
    /// The audit log's name: the token name, or `agent:<id>`.
    pub fn name(&self) -> String {
        match self {
            Actor::Token { name, .. } => name.clone(),
            Actor::Agent { id, .. } => format!("agent:{id}"),
        }
    }

    /// `admin` implies every scope; agents hold none.
    pub fn has(&self, need: Scope) -> bool {
        match self {
            Actor::Token { scopes, .. } => scopes.iter().any(|s| *s == need || *s == Scope::Admin),
            Actor::Agent { .. } => false,
        }
    }

    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Actor::Agent { id, .. } => Some(id),
            Actor::Token { .. } => None,
        }
    }

    /// Tokens with `callbacks:read` see everything; an agent sees the
    /// callbacks it owns and those of its queues.
    pub fn sees(&self, cb: &Callback) -> bool {
        match self {
            Actor::Token { .. } => self.has(Scope::CallbacksRead),
            Actor::Agent { id, queues } => cb.owner.as_deref() == Some(id.as_str()) || queues.contains(&cb.queue),
        }
    }

    /// Whether this actor may cancel, reschedule or change `cb`: a token
    /// with `callbacks:write`, or the agent that owns it.
    fn may_change(&self, cb: &Callback) -> bool {
        match self {
            Actor::Token { .. } => self.has(Scope::CallbacksWrite),
            Actor::Agent { id, .. } => cb.owner.as_deref() == Some(id.as_str()),
        }
    }
}

/// The outcome of a bulk action: what changed, and each refusal with its reason.
#[derive(Debug, Default)]
pub struct Bulk {
    pub done: Vec<Callback>,
    pub refused: Vec<(String, OpsError)>,
}

/// What a bulk action does to each selected callback.
#[derive(Debug, Clone)]
pub enum BulkAction {
    Cancel,
    /// `None` clears the owner.
    Reassign(Option<String>),
    /// To another queue.
    Move(String),
    /// Free text or RFC 3339.
    Reschedule(String),
}

impl BulkAction {
    fn audit_name(&self) -> &'static str {
        match self {
            BulkAction::Cancel => "bulk.cancel",
            BulkAction::Reassign(_) => "bulk.reassign",
            BulkAction::Move(_) => "bulk.move",
            BulkAction::Reschedule(_) => "bulk.reschedule",
        }
    }

    /// The action's argument for the audit detail.
    fn describe(&self) -> String {
        match self {
            BulkAction::Cancel => String::new(),
            BulkAction::Reassign(o) => format!("owner={}: ", o.as_deref().unwrap_or("null")),
            BulkAction::Move(q) => format!("queue={q}: "),
            // By characters: a byte cut could split one.
            BulkAction::Reschedule(w) => format!("when `{}`: ", w.trim().chars().take(MAX_WHEN).collect::<String>()),
        }
    }
}

/// A filter as the audit log names it: `status=scheduled queue=support`.
fn describe_filter(f: &ListFilter) -> String {
    let mut parts = Vec::new();
    if let Some(s) = f.status {
        parts.push(format!("status={}", s.as_str()));
    }
    for (k, v) in [("queue", &f.queue), ("owner", &f.owner), ("phone", &f.phone)] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(" ")
    }
}

/// Most callbacks one bulk action may touch.
pub const MAX_BULK: usize = 1000;

/// The operations, over the book and the agent registry.
pub struct Ops {
    pub book: Arc<dyn Book>,
    /// Queues as the last reload left them.
    pub cfg: crate::config::LiveConfig,
    pub agents: Arc<Registry>,
    pub live: Arc<dyn LiveCalls>,
    pub clock: Arc<dyn Clock>,
}

impl Ops {
    async fn audit(&self, actor: &Actor, action: &str, target: &str, detail: String) {
        let e = AuditEntry { at: self.clock.now_ms(), actor: actor.name(), action: action.into(), target: target.into(), detail };
        // The change is already committed: a failed audit write is logged,
        // never turned into a failed request.
        if let Err(err) = self.book.audit_append(vec![e]).await {
            tracing::error!(error = %err, action, target, "cannot write the audit log");
        }
    }

    /// The callback `id` if the actor may see it; any other id is 404.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Callback, OpsError> {
        let cid = CallbackId::parse(id).ok_or_else(|| OpsError::NotFound { what: "callback" })?;
        match self.book.get(cid).await? {
            Some(cb) if actor.sees(&cb) => Ok(cb),
            _ => Err(OpsError::NotFound { what: "callback" }),
        }
    }

    /// Schedules a callback. Agents book in their own queues only, and own
    /// what they book unless they name another owner.
    pub async fn create(&self, actor: &Actor, mut req: CreateCallback) -> Result<Callback, OpsError> {
        let live = req.interaction_id.as_deref().and_then(|i| self.live.lookup(i));
        if let Actor::Agent { id, queues } = actor {
            let queue = req.queue.clone().or_else(|| live.as_ref().map(|l| l.queue.clone()));
            if let Some(q) = &queue {
                if !queues.iter().any(|x| x == q) {
                    return Err(OpsError::NotInQueue { agent: id.clone(), queue: q.clone() });
                }
            }
            if req.owner.is_none() && req.owners.as_ref().is_none_or(Vec::is_empty) {
                req.owner = Some(id.clone());
            }
        } else if !actor.has(Scope::CallbacksWrite) {
            return Err(OpsError::MissingScope { actor: actor.name(), scope: "callbacks:write" });
        }
        let by_when = req.when.is_some();
        // The callback the live call's agent is on (being dialled now): a
        // booking from that call is its follow-up, not its duplicate.
        let follow_up_of = live
            .as_ref()
            .and_then(|l| l.agent.as_deref())
            .and_then(|a| self.agents.get(a))
            .and_then(|a| a.reserved_for)
            .and_then(|w| crate::scheduler::model::CallbackId::parse(&w));
        let mut new = req.into_request(live)?;
        new.follow_up_of = follow_up_of;
        if actor.agent_id().is_some() && new.origin == Some(crate::scheduler::model::Origin::Api) {
            new.origin = Some(crate::scheduler::model::Origin::Agent);
        }
        let note = AuditNote::new(actor.name(), "callback.create", |cb: &Callback| {
            format!("{} in {} due {}", cb.phone, cb.queue, rfc3339(cb.due_at))
        });
        let cb = self.book.schedule_noted(new, Some(note)).await.map_err(|e| {
            let e = OpsError::from(e);
            // The time came from `when`: blame it, not `scheduled_at`.
            if by_when {
                e.by_when()
            } else {
                e
            }
        })?;
        Ok(cb)
    }

    /// `PATCH`: changes a scheduled callback.
    pub async fn change(&self, actor: &Actor, id: &str, ch: ChangeCallback) -> Result<Callback, OpsError> {
        let cb = self.get(actor, id).await?;
        if !actor.may_change(&cb) {
            return Err(OpsError::MayNotChange { actor: actor.name() });
        }
        if actor.agent_id().is_some() {
            if ch.owner.is_some() {
                return Err(OpsError::AgentsCannotReassign { field: "owner" });
            }
            if ch.queue.is_some() {
                return Err(OpsError::AgentsCannotReassign { field: "queue" });
            }
        }
        if actor.agent_id().is_some() && (ch.owners.is_some() || ch.owner_mode.is_some()) {
            return Err(OpsError::AgentsCannotReassign { field: if ch.owners.is_some() { "owners" } else { "owner_mode" } });
        }
        if ch.when.is_some() && ch.scheduled_at.is_some() {
            return Err(OpsError::ConflictingWhen);
        }
        // `when` is resolved in the queue and timezone the callback will have.
        let when = match &ch.when {
            None => None,
            Some(text) => {
                let queue = ch.queue.as_deref().unwrap_or(&cb.queue);
                let tz = ch.timezone.as_deref().unwrap_or(&cb.timezone);
                Some(self.resolve_when_typed(queue, Some(tz), text)?)
            }
        };
        let detail = describe(&ch);
        let owners = ch.owner.is_some() || ch.owners.is_some() || ch.owner_mode.is_some();
        let time = ch.scheduled_at.is_some() || ch.when.is_some();
        let others = ch.notes.is_some() || ch.timezone.is_some() || ch.caller_name.is_some() || ch.reason.is_some() || ch.confidence.is_some();
        let action = match (time, owners, ch.queue.is_some(), others) {
            (false, false, true, false) => "callback.move",
            (false, true, false, false) => "callback.reassign",
            (true, false, false, _) => "callback.reschedule",
            _ => "callback.change",
        };
        let note = AuditNote::new(actor.name(), action, move |_: &Callback| detail);
        let by_when = ch.when.is_some();
        let out = self.book.reschedule_noted(cb.id, ch.into_changes(when)?, Some(note)).await.map_err(OpsError::from);
        if by_when {
            out.map_err(OpsError::by_when)
        } else {
            out
        }
    }

    /// Moves a scheduled callback to `when`: RFC 3339, or free text resolved
    /// in the callback's timezone and its queue's window.
    pub async fn reschedule(&self, actor: &Actor, id: &str, when: &str) -> Result<Callback, OpsError> {
        let cb = self.get(actor, id).await?;
        let at = self.resolve_when(&cb.queue, Some(&cb.timezone), when)?.0;
        let ch = ChangeCallback { scheduled_at: Some(Some(rfc3339(at))), ..Default::default() };
        let mut detail_when = when.trim().to_string();
        detail_when.truncate(MAX_WHEN);
        let cb2 = self.check_change(actor, &cb)?;
        let note = AuditNote::new(actor.name(), "callback.reschedule", move |cb: &Callback| {
            format!("when `{detail_when}` → {}", rfc3339(cb.due_at))
        });
        let out = self.book.reschedule_noted(cb2, ch.into_changes(None)?, Some(note)).await.map_err(|e| OpsError::from(e).by_when())?;
        Ok(out)
    }

    fn check_change(&self, actor: &Actor, cb: &Callback) -> Result<CallbackId, OpsError> {
        if actor.may_change(cb) {
            Ok(cb.id)
        } else {
            Err(OpsError::MayNotChange { actor: actor.name() })
        }
    }

    /// Gives a scheduled callback to `owner` (`None` = nobody). Supervisors only.
    pub async fn reassign(&self, actor: &Actor, id: &str, owner: Option<String>) -> Result<Callback, OpsError> {
        self.change(actor, id, ChangeCallback { owner: Some(owner), ..Default::default() }).await
    }

    /// Moves a scheduled callback to another queue. Supervisors only.
    pub async fn move_queue(&self, actor: &Actor, id: &str, queue: String) -> Result<Callback, OpsError> {
        self.change(actor, id, ChangeCallback { queue: Some(queue), ..Default::default() }).await
    }

    /// Cancels a scheduled callback (409 with the reason once `in_progress` or final).
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<Callback, OpsError> {
        let cb = self.get(actor, id).await?;
        let cid = self.check_change(actor, &cb)?;
        let note = AuditNote::new(actor.name(), "callback.cancel", |_: &Callback| String::new());
        Ok(self.book.cancel_noted(cid, Some(note)).await?)
    }

    /// Applies `action` to each of `ids` (supervisors with `callbacks:write`
    /// only); each refusal is reported and changes nothing else.
    pub async fn bulk(&self, actor: &Actor, ids: &[String], action: BulkAction) -> Result<Bulk, OpsError> {
        if !actor.has(Scope::CallbacksWrite) {
            return Err(OpsError::NoBulk { actor: actor.name() });
        }
        if ids.len() > MAX_BULK {
            return Err(OpsError::TooMany { max: MAX_BULK });
        }
        let mut out = Bulk::default();
        for id in ids {
            match self.apply(actor, id, &action).await {
                Ok(cb) => out.done.push(cb),
                Err(e) => out.refused.push((id.clone(), e)),
            }
        }
        self.audit(actor, action.audit_name(), &format!("{} callbacks", ids.len()), format!("{}{} done, {} refused", action.describe(), out.done.len(), out.refused.len())).await;
        Ok(out)
    }

    /// The scheduled callbacks matching `filter` that `actor` sees: what a
    /// bulk action "on all matching this filter" acts on (only scheduled
    /// callbacks can change). At most [`MAX_BULK`] + 1, so that too many is
    /// known without reading them all.
    pub async fn matching(&self, actor: &Actor, filter: &ListFilter) -> Result<Vec<Callback>, OpsError> {
        if filter.status.is_some_and(|s| s != Status::Scheduled) {
            return Ok(Vec::new());
        }
        let filter = ListFilter { status: Some(Status::Scheduled), ..filter.clone() };
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.book.list(&filter, 500, cursor.as_deref()).await?;
            out.extend(page.items.into_iter().filter(|c| actor.sees(c)));
            if out.len() > MAX_BULK {
                out.truncate(MAX_BULK + 1);
                return Ok(out);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Applies `action` to every scheduled callback matching `filter`, when
    /// they are still the `confirmed` count the person was asked about;
    /// otherwise nothing changes. One audit entry names the filter.
    pub async fn bulk_matching(&self, actor: &Actor, filter: &ListFilter, confirmed: usize, action: BulkAction) -> Result<Bulk, OpsError> {
        if !actor.has(Scope::CallbacksWrite) {
            return Err(OpsError::NoBulk { actor: actor.name() });
        }
        let found = self.matching(actor, filter).await?;
        if found.len() > MAX_BULK {
            return Err(OpsError::TooMany { max: MAX_BULK });
        }
        if found.len() != confirmed {
            return Err(OpsError::CountChanged { matched: found.len(), confirmed });
        }
        let ids: Vec<String> = found.iter().map(|c| c.id.to_string()).collect();
        let mut out = Bulk::default();
        for id in &ids {
            match self.apply(actor, id, &action).await {
                Ok(cb) => out.done.push(cb),
                Err(e) => out.refused.push((id.clone(), e)),
            }
        }
        let target = format!("filter {}", describe_filter(filter));
        self.audit(actor, action.audit_name(), &target, format!("{}{} done, {} refused", action.describe(), out.done.len(), out.refused.len())).await;
        Ok(out)
    }

    async fn apply(&self, actor: &Actor, id: &str, action: &BulkAction) -> Result<Callback, OpsError> {
        match action {
            BulkAction::Cancel => self.cancel(actor, id).await,
            BulkAction::Reassign(o) => self.reassign(actor, id, o.clone()).await,
            BulkAction::Move(q) => self.move_queue(actor, id, q.clone()).await,
            BulkAction::Reschedule(w) => self.reschedule(actor, id, w).await,
        }
    }

    /// Sets an agent `available` or `away`: `admin` for anyone, an agent for itself.
    pub async fn set_agent_state(&self, actor: &Actor, id: &str, state: AgentState) -> Result<AgentInfo, OpsError> {
        let allowed = actor.has(Scope::Admin) || actor.agent_id() == Some(id);
        if !allowed {
            return Err(OpsError::MayNotSetState { actor: actor.name(), agent: id.to_string() });
        }
        if self.agents.get(id).is_none() {
            return Err(OpsError::NotFound { what: "agent" });
        }
        let info = self.agents.set_state(id, state)?;
        self.audit(actor, "agent.state", id, state.as_str().to_string()).await;
        Ok(info)
    }

    /// How `text` (free text or RFC 3339) resolves now for `queue` in `tz`
    /// (the queue's timezone when `None`): the due time after window
    /// clipping, and the resolution (`exact`, `approximate`, `fallback`).
    pub fn resolve_when(&self, queue: &str, tz: Option<&str>, text: &str) -> Result<(Millis, &'static str), OpsError> {
        self.resolve_when_typed(queue, tz, text).map(|(at, r)| (at, r.as_str()))
    }

    /// As [`Ops::resolve_when`], with the resolution as the record keeps it.
    fn resolve_when_typed(&self, queue: &str, tz: Option<&str>, text: &str) -> Result<(Millis, WhenResolution), OpsError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(OpsError::EmptyWhen);
        }
        if text.len() > MAX_WHEN {
            return Err(OpsError::WhenTooLong { max: MAX_WHEN });
        }
        let cfg = self.cfg.get();
        let q = cfg.queue(queue).ok_or_else(|| OpsError::UnknownQueue { queue: queue.to_string() })?;
        let tz: Tz = match tz {
            Some(name) => name.parse().map_err(|_| OpsError::InvalidTimezone { timezone: name.to_string() })?,
            None => q.timezone,
        };
        if text.chars().next().is_some_and(|c| c.is_ascii_digit()) && text.contains('T') {
            let at = parse_time("when", text)?;
            return Ok((at, WhenResolution::Exact));
        }
        let r = when::resolve(text, self.clock.now_ms(), tz, &q.calling_hours(), q.retry_delay);
        Ok((r.due_ms, r.resolution))
    }

    /// The next callback the agent should know about: the one it is reserved
    /// for, else its earliest owned `scheduled` one.
    pub async fn next_for_agent(&self, agent: &str) -> Result<Option<Callback>, OpsError> {
        let reserved = self.agents.get(agent).and_then(|a| a.reserved_for).and_then(|id| CallbackId::parse(&id));
        if let Some(id) = reserved {
            if let Ok(Some(cb)) = self.book.get(id).await {
                return Ok(Some(cb));
            }
        }
        let filter = ListFilter { status: Some(Status::Scheduled), owner: Some(agent.to_string()), ..Default::default() };
        let page = self.book.list(&filter, 200, None).await?;
        Ok(page.items.into_iter().min_by_key(|c| c.due_at))
    }
}

fn describe(ch: &ChangeCallback) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &ch.scheduled_at {
        parts.push(format!("scheduled_at={}", s.as_deref().unwrap_or("null")));
    }
    if let Some(o) = &ch.owner {
        parts.push(format!("owner={}", o.as_deref().unwrap_or("null")));
    }
    if let Some(t) = &ch.timezone {
        parts.push(format!("timezone={t}"));
    }
    if ch.notes.is_some() {
        parts.push("notes changed".into());
    }
    if let Some(q) = &ch.queue {
        parts.push(format!("queue={q}"));
    }
    if let Some(w) = &ch.when {
        // By characters: a byte cut could split one.
        parts.push(format!("when `{}`", w.trim().chars().take(MAX_WHEN).collect::<String>()));
    }
    if let Some(o) = &ch.owners {
        parts.push(format!("owners=[{}]", o.join(",")));
    }
    if let Some(m) = ch.owner_mode {
        parts.push(format!("owner_mode={}", m.as_str()));
    }
    for (field, changed) in [("caller_name", ch.caller_name.is_some()), ("reason", ch.reason.is_some())] {
        if changed {
            parts.push(format!("{field} changed"));
        }
    }
    if let Some(c) = &ch.confidence {
        parts.push(format!("confidence={}", c.map_or("null".to_string(), |v| v.to_string())));
    }
    parts.join(", ")
}
