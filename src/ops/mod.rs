//! Application operations on callbacks and agents, shared by the REST API
//! and the web console: one code path for the rules, the scopes, agent
//! visibility and the audit log.
//!
//! Every operation takes an [`Actor`] (a token with its scopes, or a signed-in
//! agent), checks what that actor may see and do, calls the book, and writes
//! one audit entry per change. Errors are the API's [`ApiError`], so the
//! console shows exactly the message, code and field the API would answer.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono_tz::Tz;

use crate::agents::{AgentInfo, AgentState, Registry};
use crate::api::error::ApiError;
use crate::calls::LiveCalls;
use crate::api::views::{parse_time, ChangeCallback, CreateCallback, MAX_WHEN};
use crate::clock::{Clock, Millis};
use crate::config::{Config, Scope};
use crate::scheduler::model::{Callback, CallbackId, Status};
use crate::scheduler::store::{AuditEntry, Book};
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
            Actor::Agent { id, queues } => cb.owner.as_deref() == Some(id.as_str()) || queues.iter().any(|q| *q == cb.queue),
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

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}

/// The outcome of a bulk action: what changed, and each refusal with its reason.
#[derive(Debug, Default)]
pub struct Bulk {
    pub done: Vec<Callback>,
    pub refused: Vec<(String, ApiError)>,
}

/// What a bulk action does to each selected callback.
#[derive(Debug, Clone)]
pub enum BulkAction {
    Cancel,
    /// `None` clears the owner.
    Reassign(Option<String>),
    /// Free text or RFC 3339.
    Reschedule(String),
}

/// Most callbacks one bulk action may touch.
pub const MAX_BULK: usize = 1000;

/// The operations, over the book and the agent registry.
pub struct Ops {
    pub book: Arc<Book>,
    pub cfg: Arc<Config>,
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
    pub fn get(&self, actor: &Actor, id: &str) -> Result<Callback, ApiError> {
        let cid = CallbackId::parse(id).ok_or_else(|| ApiError::not_found("callback"))?;
        match self.book.get(cid)? {
            Some(cb) if actor.sees(&cb) => Ok(cb),
            _ => Err(ApiError::not_found("callback")),
        }
    }

    /// Schedules a callback. Agents book in their own queues only, and own
    /// what they book unless they name another owner.
    pub async fn create(&self, actor: &Actor, mut req: CreateCallback) -> Result<Callback, ApiError> {
        let live = req.interaction_id.as_deref().and_then(|i| self.live.lookup(i));
        if let Actor::Agent { id, queues } = actor {
            let queue = req.queue.clone().or_else(|| live.as_ref().map(|l| l.queue.clone()));
            if let Some(q) = &queue {
                if !queues.iter().any(|x| x == q) {
                    return Err(forbidden(format!("agent `{id}` does not serve queue `{q}`")).field("queue"));
                }
            }
            if req.owner.is_none() && req.owners.as_ref().is_none_or(Vec::is_empty) {
                req.owner = Some(id.clone());
            }
        } else if !actor.has(Scope::CallbacksWrite) {
            return Err(forbidden(format!("`{}` lacks the `callbacks:write` scope", actor.name())));
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
        let cb = self.book.schedule(new).await.map_err(|e| {
            let mut e = ApiError::from(e);
            // The time came from `when`: blame it, not `scheduled_at`.
            if by_when && e.detail.field.as_deref() == Some("scheduled_at") {
                e.detail.field = Some("when".into());
            }
            e
        })?;
        let detail = format!("{} in {} due {}", cb.phone, cb.queue, crate::api::views::rfc3339(cb.due_at));
        self.audit(actor, "callback.create", &cb.id.to_string(), detail).await;
        Ok(cb)
    }

    /// `PATCH`: changes a scheduled callback.
    pub async fn change(&self, actor: &Actor, id: &str, ch: ChangeCallback) -> Result<Callback, ApiError> {
        let cb = self.get(actor, id)?;
        if !actor.may_change(&cb) {
            return Err(forbidden(format!("`{}` may not change this callback", actor.name())));
        }
        if actor.agent_id().is_some() && ch.owner.is_some() {
            return Err(forbidden("agents cannot reassign callbacks").field("owner"));
        }
        let detail = describe(&ch);
        let action = if ch.owner.is_some() && ch.scheduled_at.is_none() && ch.notes.is_none() && ch.timezone.is_none() {
            "callback.reassign"
        } else if ch.scheduled_at.is_some() && ch.owner.is_none() {
            "callback.reschedule"
        } else {
            "callback.change"
        };
        let cb = self.book.reschedule(cb.id, ch.into_changes()?).await?;
        self.audit(actor, action, &cb.id.to_string(), detail).await;
        Ok(cb)
    }

    /// Moves a scheduled callback to `when`: RFC 3339, or free text resolved
    /// in the callback's timezone and its queue's window.
    pub async fn reschedule(&self, actor: &Actor, id: &str, when: &str) -> Result<Callback, ApiError> {
        let cb = self.get(actor, id)?;
        let at = self.resolve_when(&cb.queue, Some(&cb.timezone), when)?.0;
        let ch = ChangeCallback { scheduled_at: Some(Some(crate::api::views::rfc3339(at))), ..Default::default() };
        let mut detail_when = when.trim().to_string();
        detail_when.truncate(MAX_WHEN);
        let cb2 = self.check_change(actor, &cb)?;
        let out = self.book.reschedule(cb2, ch.into_changes()?).await.map_err(|e| {
            let mut e = ApiError::from(e);
            if e.detail.field.as_deref() == Some("scheduled_at") {
                e.detail.field = Some("when".into());
            }
            e
        })?;
        self.audit(actor, "callback.reschedule", id, format!("when `{detail_when}` → {}", crate::api::views::rfc3339(out.due_at))).await;
        Ok(out)
    }

    fn check_change(&self, actor: &Actor, cb: &Callback) -> Result<CallbackId, ApiError> {
        if actor.may_change(cb) {
            Ok(cb.id)
        } else {
            Err(forbidden(format!("`{}` may not change this callback", actor.name())))
        }
    }

    /// Gives a scheduled callback to `owner` (`None` = nobody). Supervisors only.
    pub async fn reassign(&self, actor: &Actor, id: &str, owner: Option<String>) -> Result<Callback, ApiError> {
        self.change(actor, id, ChangeCallback { owner: Some(owner), ..Default::default() }).await
    }

    /// Cancels a scheduled callback (409 with the reason once `in_progress` or final).
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<Callback, ApiError> {
        let cb = self.get(actor, id)?;
        let cid = self.check_change(actor, &cb)?;
        let cb = self.book.cancel(cid).await?;
        self.audit(actor, "callback.cancel", id, String::new()).await;
        Ok(cb)
    }

    /// Applies `action` to each of `ids` (supervisors with `callbacks:write`
    /// only); each refusal is reported and changes nothing else.
    pub async fn bulk(&self, actor: &Actor, ids: &[String], action: BulkAction) -> Result<Bulk, ApiError> {
        if !actor.has(Scope::CallbacksWrite) {
            return Err(forbidden(format!("`{}` may not use bulk actions", actor.name())));
        }
        if ids.len() > MAX_BULK {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many", format!("at most {MAX_BULK} callbacks per bulk action")));
        }
        let mut out = Bulk::default();
        for id in ids {
            let r = match &action {
                BulkAction::Cancel => self.cancel(actor, id).await,
                BulkAction::Reassign(o) => self.reassign(actor, id, o.clone()).await,
                BulkAction::Reschedule(w) => self.reschedule(actor, id, w).await,
            };
            match r {
                Ok(cb) => out.done.push(cb),
                Err(e) => out.refused.push((id.clone(), e)),
            }
        }
        let name = match action {
            BulkAction::Cancel => "bulk.cancel",
            BulkAction::Reassign(_) => "bulk.reassign",
            BulkAction::Reschedule(_) => "bulk.reschedule",
        };
        self.audit(actor, name, &format!("{} callbacks", ids.len()), format!("{} done, {} refused", out.done.len(), out.refused.len())).await;
        Ok(out)
    }

    /// Sets an agent `available` or `away`: `admin` for anyone, an agent for itself.
    pub async fn set_agent_state(&self, actor: &Actor, id: &str, state: AgentState) -> Result<AgentInfo, ApiError> {
        let allowed = actor.has(Scope::Admin) || actor.agent_id() == Some(id);
        if !allowed {
            return Err(forbidden(format!("`{}` may not set agent `{id}`'s state", actor.name())));
        }
        if self.agents.get(id).is_none() {
            return Err(ApiError::not_found("agent"));
        }
        let info = self.agents.set_state(id, state)?;
        self.audit(actor, "agent.state", id, state.as_str().to_string()).await;
        Ok(info)
    }

    /// How `text` (free text or RFC 3339) resolves now for `queue` in `tz`
    /// (the queue's timezone when `None`): the due time after window
    /// clipping, and the resolution (`exact`, `approximate`, `fallback`).
    pub fn resolve_when(&self, queue: &str, tz: Option<&str>, text: &str) -> Result<(Millis, &'static str), ApiError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_when", "`when` is empty").field("when"));
        }
        if text.len() > MAX_WHEN {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_long", format!("when is longer than {MAX_WHEN} bytes")).field("when"));
        }
        let q = self.cfg.queue(queue).ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_queue", format!("no queue named `{queue}`")).field("queue"))?;
        let tz: Tz = match tz {
            Some(name) => name.parse().map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_timezone", format!("`{name}` is not an IANA timezone")).field("timezone"))?,
            None => q.timezone,
        };
        if text.chars().next().is_some_and(|c| c.is_ascii_digit()) && text.contains('T') {
            let at = parse_time("when", text)?;
            return Ok((at, "exact"));
        }
        let r = when::resolve(text, self.clock.now_ms(), tz, &q.calling_hours(), q.retry_delay);
        Ok((r.due_ms, r.resolution.as_str()))
    }

    /// The next callback the agent should know about: the one it is reserved
    /// for, else its earliest owned `scheduled` one.
    pub fn next_for_agent(&self, agent: &str) -> Result<Option<Callback>, ApiError> {
        if let Some(cb) = self.agents.get(agent).and_then(|a| a.reserved_for).and_then(|id| CallbackId::parse(&id)).and_then(|id| self.book.get(id).ok().flatten()) {
            return Ok(Some(cb));
        }
        let filter = crate::scheduler::store::ListFilter { status: Some(Status::Scheduled), owner: Some(agent.to_string()), ..Default::default() };
        let page = self.book.list(&filter, 200, None)?;
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
    parts.join(", ")
}
