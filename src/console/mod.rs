//! The web console served by redial on `http.listen`: the supervisor's
//! callback manager (`/console`), the agents and trunks pages, and the
//! agent's workspace (`/agent`).
//!
//! - [`session`]: server-side sessions, CSRF tokens, the login throttle.
//! - [`pages`]: the HTML, rendered on the server.
//!
//! Every change goes through [`crate::ops`], the same operations (rules,
//! scopes, audit) as the REST API. Pages carry a strict Content-Security-
//! Policy (scripts and styles only from `/static`), `X-Frame-Options: DENY`,
//! and `Cache-Control: no-store`.

pub mod charts;
pub mod error;
pub mod list;
pub mod pages;
pub mod session;

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::Markup;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use self::session::ConsoleState;
use self::pages::{Frame, ListParams, Tiles};
use self::error::ConsoleError;
use self::session::{csrf_ok, Flash, Session};
use crate::agents::AgentState;
// The console is an adapter beside the REST API: it mounts its routes on
// the same router and state, and streams the same event feed.
use crate::api::feed::{event_stream, last_event_id, EventFilter};
use crate::api::state::AppState;
pub(crate) use crate::api::views::TrunkInfo;
use crate::config::Scope;
use crate::ops::request::{CreateCallback, OWNER_ME};
use crate::ops::{Actor, BulkAction};
use crate::scheduler::model::Status;
use crate::scheduler::store::ListFilter;

/// Counts the bus's attempts into the charts until the server stops.
pub fn feed_charts(s: &AppState) {
    let mut rx = s.bus.subscribe();
    let mut stopping = s.stopping.clone();
    let charts = s.console.charts.clone();
    tokio::spawn(async move {
        loop {
            let r = tokio::select! {
                r = rx.recv() => r,
                _ = stopping.wait_for(|v| *v) => return,
            };
            match r {
                Ok(e) => charts.observe(&e),
                // Missed events only make the charts a little short.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::debug!(missed = n, "charts lagged behind the bus"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

pub use self::list::PAGE_ROWS;

static JS: &[u8] = include_bytes!("static/console.js");
static CSS: &[u8] = include_bytes!("static/console.css");
static SOFTPHONE: &[u8] = include_bytes!("static/softphone.js");
/// JsSIP 3.13.8 (MIT, its licence beside it), the browser softphone's SIP stack; vendored
/// so building redial needs no Node toolchain.
static JSSIP: &[u8] = include_bytes!("static/jssip.min.js");
static JSSIP_LICENSE: &[u8] = include_bytes!("static/jssip.LICENSE.md");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/console", get(list))
        .route("/console/create", post(create))
        .route("/console/bulk", post(bulk))
        .route("/console/callbacks/{id}", get(detail))
        .route("/console/callbacks/{id}/cancel", post(cancel))
        .route("/console/callbacks/{id}/reschedule", post(reschedule))
        .route("/console/callbacks/{id}/reassign", post(reassign))
        .route("/console/callbacks/{id}/move", post(move_queue))
        .route("/console/bulk/count", get(bulk_count))
        .route("/console/agents", get(agents))
        .route("/console/agents/{id}/state", post(set_agent_state))
        .route("/console/trunks", get(trunks))
        .route("/console/tiles", get(tiles))
        .route("/console/preview", get(preview))
        .route("/console/events", get(events))
        .route("/agent", get(workspace))
        .route("/agent/state", post(agent_state))
        .route("/agent/book", post(book))
        .route("/agent/callbacks/{id}/cancel", post(cancel))
        .route("/agent/banner", get(banner))
        .route("/agent/pop/{id}", get(pop))
        .route("/static/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/static/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/static/softphone.js", get(|| async { asset("text/javascript; charset=utf-8", SOFTPHONE) }))
        .route("/static/jssip.js", get(|| async { asset("text/javascript; charset=utf-8", JSSIP) }))
        .route("/static/jssip.LICENSE.md", get(|| async { asset("text/plain; charset=utf-8", JSSIP_LICENSE) }))
        .layer(axum::middleware::map_response(secure_headers))
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The workspace's policy: [`CSP`], plus the softphone's WebSocket (another port, so
/// not `'self'`) and its remote audio (a `MediaStream`, played from `blob:`/`mediastream:`).
fn softphone_csp(ws: &str) -> String {
    // A listener on every address is reached at the page's own host: any host, that port.
    let origin = ws.trim_end_matches('/').replace("://0.0.0.0:", "://*:").replace("://[::]:", "://*:");
    CSP.replace("connect-src 'self'", &format!("connect-src 'self' {origin}")).replace("img-src", "media-src 'self' blob: mediastream:; img-src")
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    // A page may widen the policy for what it needs (the workspace's softphone).
    h.entry("content-security-policy").or_insert(HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    r
}

fn asset(ct: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn html(status: StatusCode, m: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], m.into_string()).into_response()
}

/// The signed-in session, if any: (id, session). An agent's session follows the
/// agents as configured now: an agent removed by a reload is signed out, and one
/// whose queues changed acts in the new ones.
fn session(s: &AppState, h: &HeaderMap) -> Option<(String, Session)> {
    let id = h.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(session::cookie_value)?.to_string();
    let mut sess = s.console.touch(&id, Instant::now())?;
    if let Actor::Agent { id: agent, queues } = &mut sess.actor {
        let cfg = s.live_cfg.get();
        match cfg.agent(agent) {
            Some(a) => queues.clone_from(&a.queues),
            None => {
                tracing::info!(agent = %agent, "console session ended: the agent is no longer configured");
                s.console.close(&id);
                return None;
            }
        }
    }
    Some((id, sess))
}

fn home_of(a: &Actor) -> &'static str {
    match a {
        Actor::Token { .. } => "/console",
        Actor::Agent { .. } => "/agent",
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Where to go back to after a form: the page it was sent from (same
/// origin paths only), else `fallback`.
fn back(h: &HeaderMap, fallback: &str) -> String {
    let Some(r) = h.get(header::REFERER).and_then(|v| v.to_str().ok()) else { return fallback.into() };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = r.split_once("://").and_then(|(_, rest)| rest.strip_prefix(host)).filter(|p| p.starts_with('/') && !p.starts_with("//"));
    path.map(str::to_string).unwrap_or_else(|| fallback.into())
}

type Fields = Vec<(String, String)>;

fn field<'a>(f: &'a Fields, name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn nonempty(f: &Fields, name: &str) -> Option<String> {
    field(f, name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

/// A signed-in request that passed its CSRF check.
struct Checked {
    sid: String,
    sess: Session,
}

/// The session behind a state-changing form; the login page without one, a
/// 403 page when its CSRF token is missing or wrong (nothing changes).
fn checked(s: &AppState, h: &HeaderMap, f: &Fields) -> Result<Checked, Response> {
    let Some((sid, sess)) = session(s, h) else { return Err(see_other("/login")) };
    if !csrf_ok(&sess, field(f, "csrf")) {
        return Err(html(
            StatusCode::FORBIDDEN,
            pages::problem(None, "Refused", "The form's security token is missing or stale (CSRF check failed). Nothing was changed; reload the page and try again."),
        ));
    }
    Ok(Checked { sid, sess })
}

impl Checked {
    fn report<E: Into<ConsoleError>>(&self, s: &AppState, r: Result<String, E>) {
        let f = match r.map_err(Into::into) {
            Ok(m) => Flash { ok: true, message: m, field: None },
            Err(e) => Flash { ok: false, message: e.message(), field: e.field() },
        };
        s.console.flash(&self.sid, f);
    }
}

async fn home(State(s): State<AppState>, h: HeaderMap) -> Response {
    match session(&s, &h) {
        Some((_, sess)) => see_other(home_of(&sess.actor)),
        None => see_other("/login"),
    }
}

async fn login_page(State(s): State<AppState>, h: HeaderMap) -> Response {
    match session(&s, &h) {
        Some((_, sess)) => see_other(home_of(&sess.actor)),
        None => html(StatusCode::OK, pages::login(None)),
    }
}

const REFUSED: &str = "Sign-in refused: those credentials are not valid.";

async fn login(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(f): Form<Fields>) -> Response {
    let now = Instant::now();
    let source = Some(peer.ip());
    let (account, actor) = if let Some(token) = nonempty(&f, "token") {
        let account = format!("token@{}", peer.ip());
        let actor = s
            .tokens
            .authenticate(&token)
            .map(|t| Actor::Token { name: t.name, scopes: t.scopes })
            .filter(|a| a.has(Scope::CallbacksRead));
        (account, actor)
    } else {
        let id = nonempty(&f, "agent_id").unwrap_or_default();
        let pw = field(&f, "password").unwrap_or("");
        let given: [u8; 32] = Sha256::digest(pw.as_bytes()).into();
        let cfg = s.live_cfg.get();
        let actor = cfg.agent(&id).and_then(|a| {
            let want: [u8; 32] = Sha256::digest(a.password.as_bytes()).into();
            bool::from(given.ct_eq(&want)).then(|| Actor::Agent { id: a.id.clone(), queues: a.queues.clone() })
        });
        (format!("agent:{id}"), actor)
    };
    if !s.console.may_try(source, &account, now) {
        tracing::warn!(%peer, account, "console sign-in throttled");
        return html(StatusCode::TOO_MANY_REQUESTS, pages::login(Some("Too many failed sign-ins: wait a few minutes and try again.")));
    }
    let Some(actor) = actor else {
        s.console.failed(source, &account, now);
        tracing::info!(%peer, account, "console sign-in refused");
        return html(StatusCode::UNAUTHORIZED, pages::login(Some(REFUSED)));
    };
    s.console.succeeded(&account);
    tracing::info!(actor = %actor.name(), "console sign-in");
    let to = home_of(&actor);
    let sid = s.console.open(actor, now);
    // TLS is terminated in front of redial today; `Secure` follows when it serves HTTPS itself.
    let mut r = see_other(to);
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&sid, false)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(s): State<AppState>, h: HeaderMap, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    s.console.close(&c.sid);
    let mut r = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A supervisor's session (token with `callbacks:read`); agents go to their workspace.
fn supervisor(s: &AppState, h: &HeaderMap) -> Result<(String, Session), Response> {
    match session(s, h) {
        None => Err(see_other("/login")),
        Some((_, sess)) if matches!(sess.actor, Actor::Agent { .. }) => Err(see_other("/agent")),
        Some(x) => Ok(x),
    }
}

fn frame<'a>(sess: &'a Session, nav: &'a str) -> Frame<'a> {
    Frame { actor: &sess.actor, csrf: &sess.csrf, flash: sess.flash.as_ref(), nav }
}

fn error_page(sess: Option<&Session>, e: ConsoleError) -> Response {
    let f = sess.map(|s| frame(s, "callbacks"));
    let title = if e.status() == StatusCode::NOT_FOUND { "Not found" } else { "Cannot show this" };
    html(e.status(), pages::problem(f.as_ref(), title, &e.message()))
}

/// A fragment's refusal: its status and message as plain text.
fn plain_error(e: ConsoleError) -> Response {
    (e.status(), [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], e.message()).into_response()
}

async fn tiles_now(s: &AppState) -> Result<Tiles, ConsoleError> {
    let st = s.book.stats(None).await?;
    Ok(Tiles::new(&st, &s.agents.list(), &s.trunks.trunks(), s.book.waiting_for_agent()))
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    queue: Option<String>,
    owner: Option<String>,
    phone: Option<String>,
    cursor: Option<String>,
}

async fn list(State(s): State<AppState>, h: HeaderMap, q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let (_, sess) = match supervisor(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = q.ok().map(|Query(q)| q).unwrap_or_default();
    let clean = |v: Option<String>| v.map(|v| v.trim().to_string()).unwrap_or_default();
    let p = ListParams {
        tab: q.status.filter(|t| pages::TABS.contains(&t.as_str())).unwrap_or_else(|| "all".into()),
        queue: clean(q.queue),
        owner: clean(q.owner),
        phone: clean(q.phone),
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let (agents, trunks, history) = (s.agents.list(), s.trunks.trunks(), s.console.charts.snapshot());
    let cfg = s.live_cfg.get();
    let src = list::Sources { book: &*s.book, cfg: &cfg, agents: &agents, trunks: &trunks, history: &history, now: s.ops.clock.now_ms() };
    let r = list::page(&src, &frame(&sess, "callbacks"), &p).await;
    match r {
        Ok(m) => html(StatusCode::OK, m),
        Err(e) => error_page(Some(&sess), e),
    }
}

async fn detail(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let Some((_, sess)) = session(&s, &h) else { return see_other("/login") };
    let r: Result<Markup, ConsoleError> = async {
        let cb = s.ops.get(&sess.actor, &id).await?;
        let attempts = s.book.attempts(cb.id).await?.unwrap_or_default();
        let trail = s.book.audit_for(&id, 50, 100_000).await?;
        Ok(pages::detail(&frame(&sess, "callbacks"), &cb, &attempts, &trail, &queue_names(&s)))
    }
    .await;
    match r {
        Ok(m) => html(StatusCode::OK, m),
        Err(e) => error_page(Some(&sess), e),
    }
}

fn create_request(f: &Fields) -> CreateCallback {
    CreateCallback {
        phone: nonempty(f, "phone"),
        queue: nonempty(f, "queue"),
        scheduled_at: None,
        when: nonempty(f, "when"),
        timezone: nonempty(f, "timezone"),
        owner: nonempty(f, "owner"),
        mode: None,
        caller_id: None,
        notes: nonempty(f, "notes"),
        interaction_id: nonempty(f, "interaction_id"),
        max_attempts: None,
        // The form's select offers `voice` and `sms` only.
        channel: field(f, "channel").and_then(|c| c.parse().ok()),
        ..CreateCallback::default()
    }
}

async fn create(State(s): State<AppState>, h: HeaderMap, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = s.ops.create(&c.sess.actor, create_request(&f)).await.map(|cb| format!("Scheduled {} for {}.", cb.phone, pages::local(cb.due_at, &cb.timezone)));
    c.report(&s, r);
    see_other(&back(&h, "/console"))
}

async fn book(State(s): State<AppState>, h: HeaderMap, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut req = create_request(&f);
    if req.interaction_id.is_some() {
        // A live call supplies the defaults; an explicit phone still wins.
        req.owner = Some(OWNER_ME.into());
    }
    let r = s.ops.create(&c.sess.actor, req).await.map(|cb| format!("Booked a callback to {} for {}.", cb.phone, pages::local(cb.due_at, &cb.timezone)));
    c.report(&s, r);
    see_other("/agent")
}

async fn cancel(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = s.ops.cancel(&c.sess.actor, &id).await.map(|cb| format!("Cancelled the callback to {}.", cb.phone));
    c.report(&s, r);
    see_other(&back(&h, home_of(&c.sess.actor)))
}

async fn reschedule(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let when = field(&f, "when").unwrap_or("");
    let r = s.ops.reschedule(&c.sess.actor, &id, when).await.map(|cb| format!("Rescheduled {} to {}.", cb.phone, pages::local(cb.due_at, &cb.timezone)));
    c.report(&s, r);
    see_other(&back(&h, "/console"))
}

async fn reassign(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // "alice, bob": several owners, the first free of whom takes it.
    let owners: Vec<String> = nonempty(&f, "owner").map_or_else(Vec::new, |o| o.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_string).collect());
    let done = |cb: crate::scheduler::model::Callback| {
        let who = cb.all_owners().join(", ");
        format!("{} now belongs to {}.", cb.phone, if who.is_empty() { "nobody" } else { &who })
    };
    let r = if owners.len() > 1 {
        let ch = crate::ops::request::ChangeCallback { owners: Some(owners), ..Default::default() };
        s.ops.change(&c.sess.actor, &id, ch).await.map(done)
    } else {
        s.ops.reassign(&c.sess.actor, &id, owners.into_iter().next()).await.map(done)
    };
    c.report(&s, r);
    see_other(&back(&h, "/console"))
}

fn queue_names(s: &AppState) -> Vec<String> {
    s.live_cfg.get().queues.iter().map(|q| q.name.clone()).collect()
}

async fn move_queue(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = match nonempty(&f, "queue") {
        None => Err(ConsoleError::NoQueue),
        Some(q) => s.ops.move_queue(&c.sess.actor, &id, q).await.map(|cb| format!("{} moved to queue {}.", cb.phone, cb.queue)).map_err(Into::into),
    };
    c.report(&s, r);
    see_other(&back(&h, "/console"))
}

/// The list filter a form or query names (`status` is a tab name).
fn list_filter(status: &str, queue: &str, owner: &str, phone: &str) -> ListFilter {
    let some = |v: &str| Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_string);
    ListFilter {
        status: if status == "all" || status.is_empty() { None } else { status.parse::<Status>().ok() },
        queue: some(queue),
        owner: some(owner),
        phone: some(phone),
        ..ListFilter::default()
    }
}

#[derive(Debug, Deserialize, Default)]
struct CountQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    phone: String,
}

/// How many callbacks a bulk action "on all matching this filter" would
/// touch, for its confirmation: `{"count": n, "max": 1000}`.
async fn bulk_count(State(s): State<AppState>, h: HeaderMap, q: Result<Query<CountQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let (_, sess) = match supervisor(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let q = q.ok().map(|Query(q)| q).unwrap_or_default();
    let filter = list_filter(&q.status, &q.queue, &q.owner, &q.phone);
    match s.ops.matching(&sess.actor, &filter).await {
        Ok(found) => Json(serde_json::json!({ "count": found.len(), "max": crate::ops::MAX_BULK })).into_response(),
        Err(e) => plain_error(e.into()),
    }
}

async fn bulk(State(s): State<AppState>, h: HeaderMap, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ids: Vec<String> = f.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.clone()).collect();
    let by_filter = field(&f, "scope") == Some("filter");
    let action = match field(&f, "action") {
        Some("cancel") => Ok(BulkAction::Cancel),
        Some("reassign") => Ok(BulkAction::Reassign(nonempty(&f, "owner"))),
        Some("move") => nonempty(&f, "queue").map(BulkAction::Move).ok_or(ConsoleError::NoQueue),
        Some("reschedule") => nonempty(&f, "when").map(BulkAction::Reschedule).ok_or(ConsoleError::NoWhen),
        _ => Err(ConsoleError::UnknownAction),
    };
    let done = |b: crate::ops::Bulk| {
        if b.refused.is_empty() {
            Ok(format!("Done for {} callbacks.", b.done.len()))
        } else {
            let (id, e) = &b.refused[0];
            Err(ConsoleError::PartlyRefused { done: b.done.len(), refused: b.refused.len(), first_id: id.clone(), first_reason: e.public_message() })
        }
    };
    let r = match action {
        Err(e) => Err(e),
        Ok(a) if by_filter => {
            let g = |k: &str| field(&f, k).unwrap_or("");
            let filter = list_filter(g("filter_status"), g("filter_queue"), g("filter_owner"), g("filter_phone"));
            // Without the count the person confirmed, nothing is done (and
            // the refusal says how many the filter matches).
            let confirmed = g("confirmed").trim().parse::<usize>().unwrap_or(usize::MAX);
            match s.ops.bulk_matching(&c.sess.actor, &filter, confirmed, a).await {
                Err(crate::ops::OpsError::CountChanged { matched, confirmed: usize::MAX }) => Err(ConsoleError::Unconfirmed { matched }),
                Err(e) => Err(e.into()),
                Ok(b) => done(b),
            }
        }
        Ok(_) if ids.is_empty() => Err(ConsoleError::NothingSelected),
        Ok(a) => match s.ops.bulk(&c.sess.actor, &ids, a).await {
            Err(e) => Err(e.into()),
            Ok(b) => done(b),
        },
    };
    c.report(&s, r);
    see_other(&back(&h, "/console"))
}

async fn agents(State(s): State<AppState>, h: HeaderMap) -> Response {
    let (_, sess) = match supervisor(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    html(StatusCode::OK, pages::agents(&frame(&sess, "agents"), &s.agents.list(), s.ops.clock.now_ms()))
}

async fn trunks(State(s): State<AppState>, h: HeaderMap) -> Response {
    let (_, sess) = match supervisor(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    html(StatusCode::OK, pages::trunks(&frame(&sess, "trunks"), &s.trunks.trunks()))
}

fn parse_state(f: &Fields) -> Result<AgentState, ConsoleError> {
    match field(f, "state") {
        Some("available") => Ok(AgentState::Available),
        Some("away") => Ok(AgentState::Away),
        _ => Err(ConsoleError::UnknownState),
    }
}

async fn set_agent_state(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let r = match parse_state(&f) {
        Ok(st) => s.ops.set_agent_state(&c.sess.actor, &id, st).await.map(|a| format!("{} is {}.", a.id, a.state.as_str())).map_err(Into::into),
        Err(e) => Err(e),
    };
    c.report(&s, r);
    see_other("/console/agents")
}

async fn agent_state(State(s): State<AppState>, h: HeaderMap, Form(f): Form<Fields>) -> Response {
    let c = match checked(&s, &h, &f) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(me) = c.sess.actor.agent_id().map(str::to_string) else { return see_other("/console") };
    let r = match parse_state(&f) {
        Ok(st) => s.ops.set_agent_state(&c.sess.actor, &me, st).await.map(|a| {
            if a.state == st {
                format!("You are {}.", a.state.as_str())
            } else {
                format!("Set to {}; you show as {} until your softphone registers.", st.as_str(), a.state.as_str())
            }
        }).map_err(Into::into),
        Err(e) => Err(e),
    };
    c.report(&s, r);
    see_other("/agent")
}

async fn tiles(State(s): State<AppState>, h: HeaderMap) -> Response {
    if let Err(r) = supervisor(&s, &h) {
        return r;
    }
    match tiles_now(&s).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => plain_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct PreviewQuery {
    queue: Option<String>,
    tz: Option<String>,
    text: Option<String>,
}

/// How a `when` text resolves now: plain text for the form's live preview.
async fn preview(State(s): State<AppState>, h: HeaderMap, Query(q): Query<PreviewQuery>) -> Response {
    if session(&s, &h).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let queue = q.queue.unwrap_or_default();
    let text = q.text.unwrap_or_default();
    let tz = q.tz.filter(|t| !t.is_empty());
    let out = match s.ops.resolve_when(&queue, tz.as_deref(), &text) {
        Ok((at, how)) => {
            let zone = tz.or_else(|| s.live_cfg.get().queue(&queue).map(|q| q.timezone.name().to_string())).unwrap_or_else(|| "UTC".into());
            format!("→ {} ({how})", pages::local(at, &zone))
        }
        Err(e) => e.public_message(),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response()
}

/// The bus's events for a signed-in page; agents see only their callbacks.
async fn events(State(s): State<AppState>, h: HeaderMap) -> Response {
    let Some((_, sess)) = session(&s, &h) else { return StatusCode::UNAUTHORIZED.into_response() };
    let filter = EventFilter { viewer: Some(sess.actor.clone()), ..Default::default() };
    event_stream(&s.bus, s.outbox.clone(), filter, last_event_id(&h), s.stopping.clone()).into_response()
}

/// An agent's session: (id, session, agent id).
fn agent_session(s: &AppState, h: &HeaderMap) -> Result<(Session, String), Response> {
    match session(s, h) {
        None => Err(see_other("/login")),
        Some((_, sess)) => match sess.actor.agent_id().map(str::to_string) {
            Some(id) => Ok((sess, id)),
            None => Err(see_other("/console")),
        },
    }
}

fn agent_tz(s: &AppState, queues: &[String]) -> String {
    let cfg = s.live_cfg.get();
    queues.first().and_then(|q| cfg.queue(q)).map(|q| q.timezone.name().to_string()).unwrap_or_else(|| "UTC".into())
}

#[derive(Debug, Deserialize)]
struct WorkspaceQuery {
    /// The live call the agent is on (its INVITE's interaction id).
    interaction: Option<String>,
}

async fn workspace(State(s): State<AppState>, h: HeaderMap, q: Result<Query<WorkspaceQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let (sess, me) = match agent_session(&s, &h) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let queues = match &sess.actor {
        Actor::Agent { queues, .. } => queues.clone(),
        Actor::Token { .. } => Vec::new(),
    };
    let r: Result<Markup, ConsoleError> = async {
        let state = s.agents.get(&me).map(|a| a.state.as_str()).unwrap_or("offline");
        let next = s.ops.next_for_agent(&me).await?;
        let mut mine = s.book.list(&ListFilter { owner: Some(me.clone()), ..Default::default() }, PAGE_ROWS, None).await?.items;
        mine.sort_by_key(|c| std::cmp::Reverse(c.due_at));
        let interaction = q.ok().and_then(|Query(q)| q.interaction).filter(|i| !i.is_empty());
        let live = interaction.as_ref().and_then(|i| s.live.lookup(i).filter(|c| c.agent.as_deref() == Some(me.as_str())).map(|c| (i.clone(), c.phone)));
        let tz = agent_tz(&s, &queues);
        Ok(pages::workspace(&frame(&sess, "agent"), state, next.as_ref(), &mine, &queues, live.as_ref().map(|(i, p)| (i.as_str(), p.as_str())), &tz, s.console.softphone_ws()))
    }
    .await;
    match r {
        Ok(m) => {
            let mut r = html(StatusCode::OK, m);
            if let Some(csp) = s.console.softphone_ws().and_then(|ws| HeaderValue::from_str(&softphone_csp(ws)).ok()) {
                r.headers_mut().insert("content-security-policy", csp);
            }
            r
        }
        Err(e) => error_page(Some(&sess), e),
    }
}

/// The pending banner alone, for the page script to refresh.
async fn banner(State(s): State<AppState>, h: HeaderMap) -> Response {
    let (sess, me) = match agent_session(&s, &h) {
        Ok(x) => x,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let queues = match &sess.actor {
        Actor::Agent { queues, .. } => queues.clone(),
        Actor::Token { .. } => Vec::new(),
    };
    match s.ops.next_for_agent(&me).await {
        Ok(next) => html(StatusCode::OK, pages::banner(&frame(&sess, "agent"), next.as_ref(), &agent_tz(&s, &queues))),
        Err(e) => plain_error(e.into()),
    }
}

/// The screen pop for callback `id` (which must reserve or ring this agent,
/// or be visible to it).
async fn pop(State(s): State<AppState>, h: HeaderMap, Path(id): Path<String>) -> Response {
    let (sess, _) = match agent_session(&s, &h) {
        Ok(x) => x,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let r: Result<Markup, ConsoleError> = async {
        let cb = s.ops.get(&sess.actor, &id).await?;
        // This number's history, as far as this agent may see it.
        let mut earlier = s.book.list(&ListFilter { phone: Some(cb.phone.clone()), ..Default::default() }, 50, None).await?.items;
        earlier.retain(|c| sess.actor.sees(c));
        earlier.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        earlier.truncate(20);
        Ok(pages::screen_pop(&cb, &earlier))
    }
    .await;
    match r {
        Ok(m) => html(StatusCode::OK, m),
        Err(e) => plain_error(e),
    }
}

#[cfg(test)]
mod csp_tests {
    use super::{softphone_csp, CSP};

    #[test]
    fn the_workspace_policy_admits_only_the_softphones_websocket() {
        let p = softphone_csp("wss://127.0.0.1:8089/");
        assert!(p.contains("connect-src 'self' wss://127.0.0.1:8089;"), "{p}");
        assert!(p.contains("media-src 'self' blob: mediastream:;"), "{p}");
        assert!(p.contains("script-src 'self';") && !p.contains("unsafe"), "the rest is the strict policy: {p}");
        assert_eq!(p.matches(';').count(), CSP.matches(';').count() + 1, "one directive added: {p}");
        // A listener on every address: the page's own host, that port.
        assert!(softphone_csp("ws://0.0.0.0:8088/").contains("connect-src 'self' ws://*:8088;"));
    }
}
