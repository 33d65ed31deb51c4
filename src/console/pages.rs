//! The console's pages, rendered on the server with maud: its `html!` macro
//! is checked at compile time and escapes every interpolated value, so no
//! template file is read at run time and no value can inject markup.
//! Charts are inline SVG drawn here; the page script only refreshes numbers
//! and fragments (no inline scripts, no inline styles: the CSP forbids both).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};

use super::session::Flash;
use crate::agents::AgentInfo;
use super::TrunkInfo;
use crate::clock::{rfc3339, Millis};
use crate::ops::Actor;
use crate::scheduler::model::{Attempt, Callback, Stats, Status};
use crate::scheduler::store::AuditEntry;

/// The status tabs of the list, in order.
pub const TABS: [&str; 8] = ["all", "scheduled", "in_progress", "completed", "cancelled", "exhausted", "failed", "skipped"];

/// What every page's frame needs.
pub struct Frame<'a> {
    pub actor: &'a Actor,
    pub csrf: &'a str,
    pub flash: Option<&'a Flash>,
    /// `callbacks`, `agents`, `trunks`, `audit` or `agent`.
    pub nav: &'a str,
}

/// A time in `tz`, for people: `Tue 24 Nov 10:00 EST`.
pub fn local(ms: Millis, tz: &str) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    match tz.parse::<Tz>() {
        Ok(z) => t.with_timezone(&z).format("%a %d %b %H:%M %Z").to_string(),
        Err(_) => t.format("%a %d %b %H:%M UTC").to_string(),
    }
}

/// A time the page script rewrites in the viewer's own timezone (UTC until then).
fn viewer_time(ms: Millis) -> Markup {
    html! { time datetime=(rfc3339(ms)) data-local="" { (local(ms, "UTC")) } }
}

fn label(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn excerpt(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

pub fn is_pending(s: Status) -> bool {
    matches!(s, Status::Scheduled | Status::InProgress)
}

fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

fn flash(f: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = f {
            div.flash.(if f.ok { "ok" } else { "err" }) role=(if f.ok { "status" } else { "alert" }) data-testid=(if f.ok { "flash-ok" } else { "flash-error" }) {
                (f.message)
                @if let Some(field) = &f.field { " " span.field { "(" (field) ")" } }
            }
        }
    }
}

/// The document frame: header, navigation, sign-out, the page's body.
pub fn page(title: &str, frame: Option<&Frame>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · redial" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body data-page=(frame.map_or("login", |f| f.nav)) {
                header.top {
                    a.brand href="/" { span.logo aria-hidden="true" { "◖" } "redial" }
                    @if let Some(f) = frame {
                        nav aria-label="Main" {
                            @match f.actor {
                                Actor::Token { .. } => {
                                    a href="/console" aria-current=[(f.nav == "callbacks").then_some("page")] { "Callbacks" }
                                    a href="/console/agents" aria-current=[(f.nav == "agents").then_some("page")] { "Agents" }
                                    a href="/console/trunks" aria-current=[(f.nav == "trunks").then_some("page")] { "Trunks" }
                                }
                                Actor::Agent { .. } => {
                                    a href="/agent" aria-current="page" { "Workspace" }
                                }
                            }
                        }
                        div.who {
                            span.name { (f.actor.name()) }
                            form method="post" action="/logout" {
                                (csrf(f.csrf))
                                button.link type="submit" data-testid="logout" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    @if let Some(f) = frame { (flash(f.flash)) }
                    (body)
                }
            }
        }
    }
}

/// `/login`: a supervisor signs in with a token, an agent with id and password.
pub fn login(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            div.login {
                h1 { "Sign in to redial" }
                @if let Some(e) = error { p.flash.err role="alert" data-testid="login-error" { (e) } }
                form.card method="post" action="/login" {
                    div.cards {
                        fieldset {
                            legend { "Supervisor" }
                            label for="token" { "API token" }
                            input id="token" name="token" type="password" autocomplete="off" data-testid="login-token";
                        }
                        fieldset {
                            legend { "Agent" }
                            label for="agent_id" { "Agent id" }
                            input id="agent_id" name="agent_id" autocomplete="username" data-testid="login-agent-id";
                            label for="password" { "SIP password" }
                            input id="password" name="password" type="password" autocomplete="current-password" data-testid="login-password";
                        }
                    }
                    p.sub { "Supervisors sign in with an API token; agents with their agent id and SIP password." }
                    button.primary type="submit" data-testid="login-submit" { "Sign in" }
                }
            }
        },
    )
}

/// The wallboard figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Tiles {
    pub requested: u64,
    pub pending: u64,
    pub completed: u64,
    pub avg_delay: u64,
    pub cancelled: u64,
    pub exhausted: u64,
    pub failed: u64,
    pub waiting: u64,
    pub agents_available: u64,
    pub agents_reserved: u64,
    pub agents_on_call: u64,
    pub agents_wrap_up: u64,
    pub trunks_up: u64,
    pub trunks: u64,
}

impl Tiles {
    pub fn new(st: &Stats, agents: &[AgentInfo], trunks: &[TrunkInfo], waiting: usize) -> Self {
        let count = |s: &str| agents.iter().filter(|a| a.state.as_str() == s).count() as u64;
        Tiles {
            requested: st.requested,
            pending: st.pending,
            completed: st.completed,
            avg_delay: st.avg_delay_s.round().max(0.0) as u64,
            cancelled: st.cancelled,
            exhausted: st.exhausted,
            failed: st.failed,
            waiting: waiting as u64,
            agents_available: count("available"),
            agents_reserved: count("reserved"),
            agents_on_call: count("on_call") + count("ringing"),
            agents_wrap_up: count("wrap_up"),
            trunks_up: trunks.iter().filter(|t| t.up == Some(true)).count() as u64,
            trunks: trunks.len() as u64,
        }
    }
}

fn tile(key: &str, testid: Option<&str>, name: &str, value: u64, unit: &str) -> Markup {
    html! {
        div.tile {
            div.tname { (name) }
            div.tvalue {
                span data-tile=(key) data-testid=[testid] { (value) }
                @if !unit.is_empty() { span.unit { (unit) } }
            }
        }
    }
}

pub fn tiles(t: &Tiles) -> Markup {
    html! {
        section.tiles aria-label="Wallboard" {
            (tile("requested", Some("tile-requested"), "Requested", t.requested, ""))
            (tile("pending", Some("tile-pending"), "Pending", t.pending, ""))
            (tile("completed", Some("tile-completed"), "Completed", t.completed, ""))
            (tile("avg_delay", Some("tile-avg-delay"), "Average delay", t.avg_delay, "s"))
            (tile("waiting", None, "Due, waiting for an agent", t.waiting, ""))
            (tile("failed", None, "Failed", t.failed, ""))
            (tile("exhausted", None, "Exhausted", t.exhausted, ""))
            (tile("agents_available", Some("tile-agents-available"), "Agents available", t.agents_available, ""))
            (tile("agents_reserved", None, "Reserved", t.agents_reserved, ""))
            (tile("agents_on_call", None, "On call", t.agents_on_call, ""))
            (tile("agents_wrap_up", None, "Wrap-up", t.agents_wrap_up, ""))
            (tile("trunks_up", None, "Trunks up", t.trunks_up, ""))
        }
    }
}

/// A bar chart of `bars` (label, value) as inline SVG.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> Markup {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // `top` leaves room for the value written above the tallest bar.
    let (w, h, gap, top) = (46u64, 100u64, 8u64, 14u64);
    let width = bars.len() as u64 * (w + gap) + gap;
    html! {
        figure.chart {
            figcaption { (title) }
            svg width=(width) height=(top + h + 20) viewBox={ "0 0 " (width) " " (top + h + 20) } role="img" aria-label=(title) {
                @for (i, (name, v)) in bars.iter().enumerate() {
                    @let bh = (v * h / max).max(1);
                    @let x = gap + i as u64 * (w + gap);
                    rect x=(x) y=(top + h - bh) width=(w) height=(bh) fill="#2563eb" rx="3" { title { (name) ": " (v) } }
                    text x=(x + w / 2) y=(top + h + 14) font-size="10" text-anchor="middle" fill="#475569" { (name) }
                    text x=(x + w / 2) y=(top + h - bh - 3) font-size="10" text-anchor="middle" fill="#0f172a" { (v) }
                }
            }
        }
    }
}

/// The list's filters as the page was asked.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub tab: String,
    pub queue: String,
    pub owner: String,
    pub phone: String,
    pub cursor: Option<String>,
}

impl ListParams {
    fn query(&self, tab: &str) -> String {
        let mut q = vec![format!("status={}", enc(tab))];
        for (k, v) in [("queue", &self.queue), ("owner", &self.owner), ("phone", &self.phone)] {
            if !v.is_empty() {
                q.push(format!("{k}={}", enc(v)));
            }
        }
        format!("/console?{}", q.join("&"))
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn status_badge(s: Status) -> Markup {
    html! { span.status.(s.as_str()) data-role="status" { (label(s.as_str())) } }
}

fn row(cb: &Callback, f: &Frame, can_write: bool, queues: &[String]) -> Markup {
    let id = cb.id.to_string();
    html! {
        tr data-testid="callback-row" data-callback-id=(id) data-status=(cb.status.as_str()) {
            td {
                @if can_write {
                    input type="checkbox" name="id" value=(id) form="bulk" data-testid="bulk-select" aria-label={ "Select " (cb.phone) };
                }
            }
            td {
                a href={ "/console/callbacks/" (id) } { (cb.phone) }
                @if let Some(n) = &cb.caller_id { div.sub { (n) } }
            }
            td { (cb.queue) }
            td { (cb.owner.as_deref().unwrap_or("—")) }
            td { (label(cb.origin.as_str())) }
            td {
                (status_badge(cb.status))
                @if is_pending(cb.status) { " " span.badge data-testid="callback-badge" { "Callback" } }
            }
            td.due {
                div { (local(cb.due_at, &cb.timezone)) }
                div.sub { "yours: " (viewer_time(cb.due_at)) }
            }
            td.num { (cb.attempts) "/" (cb.max_attempts) }
            td { (cb.last_outcome.map(|o| label(o.as_str())).unwrap_or_else(|| "—".into())) }
            td.notes { (excerpt(cb.notes.as_deref().unwrap_or(""), 40)) }
            td.actions {
                (actions(cb, f, can_write, queues))
            }
        }
    }
}

fn actions(cb: &Callback, f: &Frame, can_write: bool, queues: &[String]) -> Markup {
    let id = cb.id.to_string();
    html! {
        @if can_write && cb.status != Status::Scheduled && cb.status != Status::InProgress {
            span.sub { "final" }
        } @else if can_write {
            form.inline method="post" action={ "/console/callbacks/" (id) "/cancel" } {
                (csrf(f.csrf))
                button.danger type="submit" data-testid="action-cancel" { "Cancel" }
            }
            form.inline method="post" action={ "/console/callbacks/" (id) "/reschedule" } {
                (csrf(f.csrf))
                input name="when" data-testid="reschedule-when" placeholder="tomorrow 10am" aria-label="New time" data-preview=(cb.queue) data-tz=(cb.timezone) size="12";
                button type="submit" data-testid="action-reschedule" { "Reschedule" }
                output.preview {}
            }
            @if f.actor.agent_id().is_none() {
                form.inline method="post" action={ "/console/callbacks/" (id) "/reassign" } {
                    (csrf(f.csrf))
                    input name="owner" data-testid="reassign-owner" placeholder="agent id(s)" aria-label="New owner, or several separated by commas" size="8";
                    button type="submit" data-testid="action-reassign" { "Reassign" }
                }
                @if queues.len() > 1 {
                    form.inline method="post" action={ "/console/callbacks/" (id) "/move" } {
                        (csrf(f.csrf))
                        select name="queue" data-testid="move-queue" aria-label="Move to queue" {
                            @for q in queues.iter().filter(|q| **q != cb.queue) { option value=(q) { (q) } }
                        }
                        button type="submit" data-testid="action-move" { "Move" }
                    }
                }
            }
        }
    }
}

/// Counts per tab (`None` where the counters cannot tell).
pub fn tab_counts(st: &Stats) -> [Option<u64>; 8] {
    [Some(st.requested), None, None, Some(st.completed), Some(st.cancelled), Some(st.exhausted), Some(st.failed), Some(st.skipped)]
}

/// `/console`: tiles, charts, tabs, filters, bulk bar, the list.
#[allow(clippy::too_many_arguments)]
pub fn console(f: &Frame, t: &Tiles, st: &Stats, charts: Markup, queues: &[String], p: &ListParams, rows: &[Callback], next: Option<&str>) -> Markup {
    let can_write = f.actor.has(crate::config::Scope::CallbacksWrite);
    let counts = tab_counts(st);
    let body = html! {
        div.pagehead {
            h1 { "Callbacks" }
            @if can_write {
                details.create {
                    summary { "New callback" }
                    form.grid method="post" action="/console/create" {
                        (csrf(f.csrf))
                        label { "Phone" input name="phone" placeholder="+15550123" required; }
                        label { "Queue" select name="queue" { @for q in queues { option value=(q) { (q) } } } }
                        label { "When" input name="when" placeholder="tomorrow morning" data-preview=(queues.first().map(String::as_str).unwrap_or("")); output.preview {} }
                        label { "Owner" input name="owner" placeholder="agent id (optional)"; }
                        label { "Channel" select name="channel" { option value="voice" { "Call" } option value="sms" { "Text instead of a call" } } }
                        label.wide { "Notes" input name="notes"; }
                        button.primary type="submit" { "Schedule" }
                    }
                }
            }
        }
        (tiles(t))
        section.charts { (charts) }
        nav.tabs aria-label="Status" {
            @for (i, tab) in TABS.iter().enumerate() {
                a href=(p.query(tab)) data-testid={ "tab-" (tab) } aria-current=[(p.tab == *tab).then_some("page")] {
                    (label(tab))
                    @if let Some(n) = counts[i] { " " span.count { (n) } }
                }
            }
        }
        form.filters method="get" action="/console" role="search" {
            input type="hidden" name="status" value=(p.tab);
            label { "Queue" select name="queue" {
                option value="" { "All" }
                @for q in queues { option value=(q) selected[p.queue == *q] { (q) } }
            } }
            label { "Owner" input name="owner" value=(p.owner) placeholder="agent id"; }
            label { "Phone" input name="phone" value=(p.phone) placeholder="+15550123" data-testid="filter-phone"; }
            button type="submit" { "Filter" }
            a href="/console" { "Clear" }
        }
        @if can_write {
            form #bulk .bulkbar method="post" action="/console/bulk" data-confirm-noun="callbacks" {
                (csrf(f.csrf))
                // The filter the list shows, for "all matching this filter".
                input type="hidden" name="filter_status" value=(p.tab);
                input type="hidden" name="filter_queue" value=(p.queue);
                input type="hidden" name="filter_owner" value=(p.owner);
                input type="hidden" name="filter_phone" value=(p.phone);
                input type="hidden" name="confirmed" value="";
                label.scope {
                    input type="checkbox" name="scope" value="filter" data-testid="bulk-all";
                    " All scheduled callbacks matching this filter (not only the selected)"
                }
                span { "Act: " }
                button.danger type="submit" name="action" value="cancel" data-testid="bulk-cancel" data-verb="Cancel" { "Cancel" }
                input name="owner" placeholder="agent id" aria-label="Owner for bulk reassign" data-testid="bulk-owner" size="8";
                button type="submit" name="action" value="reassign" data-testid="bulk-reassign" data-verb="Reassign" { "Reassign" }
                select name="queue" aria-label="Queue for bulk move" data-testid="bulk-queue" { @for q in queues { option value=(q) { (q) } } }
                button type="submit" name="action" value="move" data-testid="bulk-move" data-verb="Move" { "Move to queue" }
                input name="when" placeholder="monday 9am" aria-label="Time for bulk reschedule" data-testid="bulk-when" size="10";
                button type="submit" name="action" value="reschedule" data-testid="bulk-reschedule" data-verb="Reschedule" { "Reschedule" }
            }
        }
        table.list {
            thead { tr {
                th { span.sr { "Select" } } th { "Phone" } th { "Queue" } th { "Owner" } th { "Origin" } th { "Status" }
                th { "Due" } th { "Attempts" } th { "Last outcome" } th { "Notes" } th { "Actions" }
            } }
            tbody {
                @for cb in rows { (row(cb, f, can_write, queues)) }
                @if rows.is_empty() { tr { td colspan="11" .empty { "No callbacks match." } } }
            }
        }
        @if let Some(c) = next {
            p.pager { a href={ (p.query(&p.tab)) "&cursor=" (enc(c)) } data-testid="next-page" { "Next page →" } }
        }
    };
    page("Callbacks", Some(f), body)
}

/// The stages of an attempt's timeline, in order, with their times.
fn stages(a: &Attempt) -> Vec<(&'static str, Option<Millis>)> {
    let t = &a.timeline;
    vec![
        ("dialled", t.dialed_at),
        ("ringing", t.ringing_at),
        ("answered", t.answered_at),
        ("AMD", t.amd_at),
        ("agent ringing", t.agent_ringing_at),
        ("bridged", t.bridged_at),
        ("ended", Some(a.ended_at)),
    ]
}

/// An attempt's timeline as a small horizontal picture.
pub fn timeline(a: &Attempt) -> Markup {
    let span = (a.ended_at - a.started_at).max(1) as f64;
    let width = 420.0;
    html! {
        svg.timeline width="440" height="46" viewBox="0 0 440 46" role="img" aria-label={ "Attempt " (a.attempt) " timeline" } {
            line x1="10" y1="16" x2=(10.0 + width) y2="16" stroke="#cbd5e1" stroke-width="2" {}
            @for (name, at) in stages(a) {
                @if let Some(at) = at {
                    @let x = 10.0 + width * ((at - a.started_at) as f64 / span).clamp(0.0, 1.0);
                    circle cx=(format!("{x:.1}")) cy="16" r="5" fill="#2563eb" { title { (name) " +" (format!("{:.1}", (at - a.started_at) as f64 / 1000.0)) " s" } }
                    text x=(format!("{x:.1}")) y="38" font-size="9" text-anchor="middle" fill="#334155" { (name) }
                }
            }
        }
    }
}

/// The detail page of one callback.
pub fn detail(f: &Frame, cb: &Callback, attempts: &[Attempt], trail: &[AuditEntry], queues: &[String]) -> Markup {
    let can_write = f.actor.has(crate::config::Scope::CallbacksWrite) || f.actor.agent_id().is_some_and(|a| cb.owner.as_deref() == Some(a));
    let body = html! {
        p { a href="/console" { "← Callbacks" } }
        div.pagehead {
            h1 { (cb.phone) " " (status_badge(cb.status)) }
        }
        div.split {
            section.card {
                h2 { "Details" }
                dl.fields data-testid="callback-detail" data-callback-id=(cb.id.to_string()) data-status=(cb.status.as_str()) {
                    dt { "Id" } dd { code { (cb.id.to_string()) } }
                    dt { "Queue" } dd { (cb.queue) }
                    dt { "Owner" } dd { (cb.owner.as_deref().unwrap_or("—")) }
                    dt { "Mode" } dd { (label(match cb.mode { crate::config::DialMode::CustomerFirst => "customer_first", crate::config::DialMode::AgentFirst => "agent_first" })) }
                    dt { "Origin" } dd { (label(cb.origin.as_str())) }
                    dt { "Due (customer)" } dd { (local(cb.due_at, &cb.timezone)) " · " (cb.timezone) }
                    dt { "Due (yours)" } dd { (viewer_time(cb.due_at)) }
                    dt { "Asked as" } dd {
                        @if let Some(w) = &cb.when { "“" (w) "” → " (cb.when_resolution.map(|r| r.as_str()).unwrap_or("")) } @else { "an exact time" }
                    }
                    dt { "Attempts" } dd { (cb.attempts) " of " (cb.max_attempts) }
                    dt { "Last outcome" } dd { (cb.last_outcome.map(|o| label(o.as_str())).unwrap_or_else(|| "—".into())) }
                    dt { "End reason" } dd { (cb.end_reason.map(|r| r.as_str()).unwrap_or("—")) }
                    dt { "Interaction" } dd { (cb.interaction_id.as_deref().unwrap_or("—")) }
                    dt { "Caller id" } dd { (cb.caller_id.as_deref().unwrap_or("—")) }
                    dt { "Created" } dd { (viewer_time(cb.created_at)) }
                    dt { "Updated" } dd { (viewer_time(cb.updated_at)) }
                    dt { "Notes" } dd { (cb.notes.as_deref().unwrap_or("—")) }
                }
                @if can_write { div.actions { (actions(cb, f, true, queues)) } }
            }
            section.card {
                h2 { "Attempts" }
                @if attempts.is_empty() { p.sub { "No attempt yet." } }
                @for a in attempts {
                    div.attempt {
                        div { strong { "#" (a.attempt) } " " (label(a.outcome.as_str()))
                            @if let Some(s) = a.sip_status { " · SIP " (s) }
                            @if let Some(ag) = &a.agent { " · agent " (ag) }
                            " · " (format!("{:.1}", (a.ended_at - a.started_at) as f64 / 1000.0)) " s" }
                        (timeline(a))
                    }
                }
                h2 { "Audit trail" }
                @if trail.is_empty() { p.sub { "No change recorded." } }
                ul.trail {
                    @for e in trail { li { (viewer_time(e.at)) " " strong { (e.actor) } " " (e.action) @if !e.detail.is_empty() { " — " (e.detail) } } }
                }
            }
        }
    };
    page(&cb.phone, Some(f), body)
}

/// `/console/agents`.
pub fn agents(f: &Frame, list: &[AgentInfo], now: Millis) -> Markup {
    let admin = f.actor.has(crate::config::Scope::Admin);
    let body = html! {
        h1 { "Agents" }
        table.list {
            thead { tr { th { "Agent" } th { "State" } th { "Queues" } th { "Registrations" } th { "Reserved for" } @if admin { th { "Set" } } } }
            tbody {
                @for a in list {
                    tr data-testid="agent-row" data-agent-id=(a.id) data-state=(a.state.as_str()) {
                        td { (a.id) }
                        td { span.status.(a.state.as_str()) { (label(a.state.as_str())) } }
                        td { (a.queues.join(", ")) }
                        td {
                            @if a.registrations.is_empty() { span.sub { "none" } }
                            @for r in &a.registrations { div { code { (r.contact) } " " span.sub { "expires in " ((r.expires_at - now).max(0) / 1000) " s" } } }
                        }
                        td { @if let Some(r) = &a.reserved_for { a href={ "/console/callbacks/" (r) } { (r) } } @else { "—" } }
                        @if admin {
                            td {
                                form.inline method="post" action={ "/console/agents/" (a.id) "/state" } {
                                    (csrf(f.csrf))
                                    button type="submit" name="state" value="available" { "Available" }
                                    button type="submit" name="state" value="away" { "Away" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Agents", Some(f), body)
}

/// `/console/trunks`.
pub fn trunks(f: &Frame, list: &[TrunkInfo]) -> Markup {
    let body = html! {
        h1 { "Trunks" }
        table.list {
            thead { tr { th { "Trunk" } th { "Registered" } th { "Expires in" } th { "Up" } th { "Last error" } } }
            tbody {
                @for t in list {
                    tr data-testid="trunk-row" {
                        td { (t.name) }
                        td { (if t.registered { "yes" } else { "no" }) }
                        td { (t.expires_in.map(|s| format!("{s} s")).unwrap_or_else(|| "—".into())) }
                        td { (match t.up { Some(true) => "up", Some(false) => "down", None => "unknown" }) }
                        td { (t.last_error.as_deref().unwrap_or("—")) }
                    }
                }
                @if list.is_empty() { tr { td colspan="5" .empty { "No trunk is configured." } } }
            }
        }
    };
    page("Trunks", Some(f), body)
}

/// The agent's pending banner (the next owned or reserved callback).
pub fn banner(f: &Frame, next: Option<&Callback>, agent_tz: &str) -> Markup {
    html! {
        div #banner {
            @if let Some(cb) = next {
                div.banner role="status" data-testid="pending-banner" data-callback-id=(cb.id.to_string()) {
                    div {
                        strong { "Callback to " (cb.phone) }
                        " · " (label(cb.status.as_str()))
                    }
                    div { "When: " (local(cb.due_at, agent_tz)) " (yours: " (viewer_time(cb.due_at)) ") · customer's time " (local(cb.due_at, &cb.timezone)) }
                    div { "Why: " (cb.notes.as_deref().unwrap_or("no notes"))
                        @if let Some(w) = &cb.when { " · asked for “" (w) "”" }
                        " · " (label(cb.origin.as_str())) " request" }
                    @if cb.status == Status::Scheduled && f.actor.agent_id().is_some_and(|a| cb.owner.as_deref() == Some(a)) {
                        form.inline method="post" action={ "/agent/callbacks/" (cb.id.to_string()) "/cancel" } {
                            (csrf(f.csrf))
                            button.danger type="submit" data-testid="banner-cancel" { "Cancel this callback" }
                        }
                    }
                }
            } @else {
                p.sub { "No pending callback." }
            }
        }
    }
}

/// The screen pop: who is being called back, and their history.
pub fn screen_pop(cb: &Callback, earlier: &[Callback]) -> Markup {
    html! {
        div.pop role="alert" data-testid="screen-pop" data-callback-id=(cb.id.to_string()) {
            h2 { "Calling back " (cb.phone) }
            p { "Notes: " (cb.notes.as_deref().unwrap_or("—")) }
            p { "Attempts so far: " (cb.attempts) " of " (cb.max_attempts) " · queue " (cb.queue) }
            h3 { "Earlier callbacks for this number" }
            ul {
                @for e in earlier.iter().filter(|e| e.id != cb.id) {
                    li { (local(e.created_at, &e.timezone)) " · " (label(e.status.as_str())) " · " (e.notes.as_deref().unwrap_or("")) }
                }
                @if earlier.iter().all(|e| e.id == cb.id) { li { "None." } }
            }
        }
    }
}

/// `/agent`: state, banner, booking, my callbacks, the softphone's place.
#[allow(clippy::too_many_arguments)]
pub fn workspace(f: &Frame, state: &str, next: Option<&Callback>, mine: &[Callback], queues: &[String], live: Option<(&str, &str)>, agent_tz: &str, softphone_ws: Option<&str>) -> Markup {
    let me = f.actor.agent_id().unwrap_or("");
    let body = html! {
        div.pagehead {
            h1 { "Workspace" }
            form.inline method="post" action="/agent/state" {
                (csrf(f.csrf))
                input type="hidden" name="state" value=(if state == "away" { "available" } else { "away" });
                span.sub { "Your state: " }
                button.state.(state) type="submit" data-testid="agent-state" data-state=(state) aria-label={ "State " (state) ", click to change" } { (state) }
            }
        }
        div #agent data-agent-id=(me) {}
        (banner(f, next, agent_tz))
        div #screen-pop aria-live="assertive" {}
        div.split {
            section.card {
                h2 { "Book a callback" }
                form.grid method="post" action="/agent/book" {
                    (csrf(f.csrf))
                    @if let Some((interaction, phone)) = live {
                        input type="hidden" name="interaction_id" value=(interaction);
                        p.sub.wide { "From your live call with " (phone) "." }
                    }
                    label { "Phone" input name="phone" data-testid="book-phone" placeholder="+15550123" value=[live.map(|l| l.1)]; }
                    label { "Queue" select name="queue" { @for q in queues { option value=(q) { (q) } } } }
                    label { "When" input name="when" data-testid="book-when" placeholder="tomorrow morning" data-preview=(queues.first().map(String::as_str).unwrap_or("")); output.preview {} }
                    label.wide { "Notes" input name="notes" data-testid="book-notes"; }
                    button.primary type="submit" data-testid="book-submit" { "Book" }
                }
            }
            (softphone(me, softphone_ws))
        }
        section.card {
            h2 { "My callbacks" }
            table.list {
                thead { tr { th { "Phone" } th { "Queue" } th { "Status" } th { "Due" } th { "Attempts" } th { "Notes" } } }
                tbody {
                    @for cb in mine {
                        tr data-testid="callback-row" data-callback-id=(cb.id.to_string()) data-status=(cb.status.as_str()) {
                            td { (cb.phone) } td { (cb.queue) } td { (status_badge(cb.status)) @if is_pending(cb.status) { " " span.badge data-testid="callback-badge" { "Callback" } } }
                            td { (local(cb.due_at, &cb.timezone)) } td.num { (cb.attempts) "/" (cb.max_attempts) } td.notes { (excerpt(cb.notes.as_deref().unwrap_or(""), 40)) }
                        }
                    }
                    @if mine.is_empty() { tr { td colspan="6" .empty { "No callbacks yet." } } }
                }
            }
        }
    };
    page("Workspace", Some(f), body)
}

/// The browser softphone (`/static/softphone.js` over the vendored JsSIP): it registers
/// as agent `me` over SIP-over-WebSocket at `ws` (none: redial has no `sip.ws_listen`,
/// and the card says so). The SIP password comes from the sign-in, kept in the tab's
/// session storage, or is asked for here.
fn softphone(me: &str, ws: Option<&str>) -> Markup {
    html! {
        section.card #softphone data-agent=(me) data-ws=[ws] {
            h2 { "Softphone" }
            p { "Status: " span data-testid="softphone-status" { "unregistered" } " " span.sub data-testid="softphone-detail" {} }
            @if ws.is_none() {
                p.sub { "No SIP-over-WebSocket listener is configured (sip.ws_listen): use a SIP softphone." }
            }
            form.inline #softphone-login hidden {
                    label { "SIP password " input type="password" autocomplete="current-password" data-testid="softphone-password"; }
                    " "
                    button type="submit" data-testid="softphone-register" { "Connect" }
                }
                div.pop #softphone-ringing role="alert" data-testid="softphone-ringing" hidden {
                    strong data-testid="softphone-caller" {}
                    div data-testid="softphone-context" {}
                }
                p {
                    button.primary type="button" data-testid="softphone-answer" disabled { "Answer" }
                    " "
                    button.danger type="button" data-testid="softphone-hangup" disabled { "Hang up" }
                    " "
                    button type="button" data-testid="softphone-mute" aria-pressed="false" disabled { "Mute" }
                    " "
                    button type="button" data-testid="softphone-hold" aria-pressed="false" disabled { "Hold" }
                }
                div.keypad data-testid="softphone-keypad" {
                    @for d in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"] {
                        button type="button" data-testid="softphone-dtmf" data-digit=(d) disabled { (d) }
                    }
                }
                p {
                    label { "Microphone " select data-testid="softphone-mic" { option value="" { "Default" } } }
                }
                p {
                    label { input type="checkbox" data-testid="softphone-auto-answer"; " Answer reserved callbacks automatically" }
                }
                audio #softphone-audio autoplay {}
            @if ws.is_some() {
                script src="/static/jssip.js" defer {}
                script src="/static/softphone.js" defer {}
            }
        }
    }
}

/// A page that says what went wrong (403 CSRF, 404).
pub fn problem(f: Option<&Frame>, title: &str, message: &str) -> Markup {
    page(title, f, html! { h1 { (title) } p data-testid="problem" { (message) } p { a href="/" { "Back" } } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scope;

    fn cb(status: Status, notes: &str) -> Callback {
        Callback { status, notes: Some(notes.into()), ..Callback::sample() }
    }

    fn sup(scopes: Vec<Scope>) -> Actor {
        Actor::Token { name: "boss".into(), scopes }
    }

    fn render_console(actor: &Actor, rows: &[Callback]) -> String {
        let f = Frame { actor, csrf: "tok123", flash: None, nav: "callbacks" };
        let st = Stats { requested: 9, pending: 4, completed: 3, avg_delay_s: 61.6, ..Default::default() };
        let t = Tiles::new(&st, &[], &[], 0);
        let p = ListParams { tab: "all".into(), ..Default::default() };
        console(&f, &t, &st, bar_chart("x", &[("a".into(), 2)]), &["support".into(), "sales".into()], &p, rows, Some("cb_next")).into_string()
    }

    #[test]
    fn the_list_carries_the_test_hooks_and_escapes_every_value() {
        let html = render_console(&sup(vec![Scope::CallbacksWrite]), &[cb(Status::Scheduled, "<script>alert(1)</script>")]);
        for hook in ["tile-requested", "tile-pending", "tile-completed", "tile-avg-delay", "tile-agents-available", "tab-all", "tab-in_progress", "tab-skipped", "filter-phone", "callback-row", "callback-badge", "bulk-select", "bulk-cancel", "action-cancel", "action-reschedule", "reschedule-when", "action-reassign", "reassign-owner", "action-move", "move-queue", "bulk-all", "bulk-move", "bulk-queue"] {
            assert!(html.contains(&format!("data-testid=\"{hook}\"")), "missing {hook}");
        }
        assert!(html.contains("data-status=\"scheduled\""));
        assert!(html.contains("data-testid=\"tile-avg-delay\">62<"), "average delay in whole seconds");
        assert!(!html.contains("<script>alert"), "notes are escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("style=") && !html.contains("onclick") && !html.contains("<script>"), "no inline style or script (the CSP forbids them)");
        assert!(html.contains("name=\"csrf\" value=\"tok123\""));
        assert!(html.contains("Wed 18 Nov 06:06 EST"), "due time shown in the customer's timezone");
    }

    #[test]
    fn a_read_only_viewer_gets_no_actions_and_final_rows_no_cancel() {
        let html = render_console(&sup(vec![Scope::CallbacksRead]), &[cb(Status::Scheduled, "n")]);
        assert!(!html.contains("action-cancel") && !html.contains("bulk-cancel") && !html.contains("bulk-select"));
        let html = render_console(&sup(vec![Scope::Admin]), &[cb(Status::Completed, "n")]);
        assert!(!html.contains("data-testid=\"action-cancel\""));
        assert!(!html.contains("data-testid=\"callback-badge\""), "a final callback is not pending");
    }

    #[test]
    fn login_refusal_and_workspace_hooks() {
        let html = login(Some("Sign-in refused")).into_string();
        for hook in ["login-token", "login-agent-id", "login-password", "login-submit", "login-error"] {
            assert!(html.contains(&format!("data-testid=\"{hook}\"")), "missing {hook}");
        }
        let agent = Actor::Agent { id: "alice".into(), queues: vec!["support".into()] };
        let f = Frame { actor: &agent, csrf: "t", flash: None, nav: "agent" };
        let next = cb(Status::Scheduled, "refund status");
        let html = workspace(&f, "away", Some(&next), &[next.clone()], &["support".into()], Some(("int-1", "+15550999")), "UTC", Some("ws://127.0.0.1:8088/")).into_string();
        for hook in ["agent-state", "pending-banner", "banner-cancel", "book-phone", "book-when", "book-notes", "book-submit", "softphone-status", "softphone-answer", "softphone-hangup"] {
            assert!(html.contains(&format!("data-testid=\"{hook}\"")), "missing {hook}");
        }
        assert!(html.contains("value=\"+15550999\""), "booking is prefilled from the live call");
        assert!(html.contains("name=\"interaction_id\" value=\"int-1\""));
        assert!(html.contains(">unregistered<"));
        assert!(html.contains("refund status"));
        for hook in ["softphone-mute", "softphone-hold", "softphone-dtmf", "softphone-mic", "softphone-auto-answer", "softphone-ringing", "softphone-password"] {
            assert!(html.contains(&format!("data-testid=\"{hook}\"")), "missing {hook}");
        }
        assert!(html.contains("data-ws=\"ws://127.0.0.1:8088/\""), "the softphone is told where to register");
        let none = workspace(&f, "away", None, &[], &["support".into()], None, "UTC", None).into_string();
        assert!(none.contains("sip.ws_listen") && !none.contains("data-ws="), "without a listener the card says so");
    }

    #[test]
    fn the_timeline_places_each_stage_it_has() {
        let mut a = Attempt {
            attempt: 1,
            started_at: 0,
            ended_at: 10_000,
            outcome: crate::scheduler::model::Outcome::Human,
            sip_status: Some(200),
            amd: None,
            agent: None,
            note: None,
            timeline: Default::default(),
        };
        a.timeline.dialed_at = Some(0);
        a.timeline.answered_at = Some(5_000);
        let svg = timeline(&a).into_string();
        assert_eq!(svg.matches("<circle").count(), 3, "dialled, answered, ended");
        assert!(svg.contains("cx=\"220.0\""), "answered half-way");
    }
}
