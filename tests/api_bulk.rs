//! Bulk actions on "all matching this filter" and moving callbacks to
//! another queue, through the operations the API and the console share (in
//! this process, on the usual test configuration), and `PATCH {"queue"}`
//! over HTTP.

mod common;

use std::sync::Arc;

use common::api::*;
use redial::api::{start_api, ApiServer, ConfiguredTrunks, LiveCalls, NoLiveCalls};
use redial::clock::{Clock, SystemClock};
use redial::config::{Config, Scope};
use redial::ops::request::CreateCallback;
use redial::ops::{Actor, BulkAction, OpsError};
use redial::scheduler::book::ListFilter;
use redial::scheduler::model::Status;
use serde_json::{json, Value};

struct InProcess {
    rt: tokio::runtime::Runtime,
    api: Option<ApiServer>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("sip-profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let path = dir.path().join("redial.toml");
        std::fs::write(&path, config(&dir.path().join("data/redial.redb"), &profiles, true)).unwrap();
        let cfg = Arc::new(Config::load(Some(&path)).expect("config"));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let trunks = Arc::new(ConfiguredTrunks::new(&cfg));
        let api = rt.block_on(start_api(cfg, Arc::new(SystemClock) as Arc<dyn Clock>, trunks, Arc::new(NoLiveCalls) as Arc<dyn LiveCalls>)).expect("start");
        InProcess { rt, api: Some(api), _dir: dir }
    }

    fn api(&self) -> &ApiServer {
        self.api.as_ref().unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            self.rt.block_on(api.shutdown());
        }
    }
}

fn supervisor(scopes: Vec<Scope>) -> Actor {
    Actor::Token { name: "boss".into(), scopes }
}

fn booking(phone: &str, queue: &str) -> CreateCallback {
    CreateCallback {
        phone: Some(phone.into()),
        queue: Some(queue.into()),
        scheduled_at: None,
        when: Some("tomorrow at 10am".into()),
        timezone: None,
        owner: None,
        mode: None,
        caller_id: None,
        notes: None,
        interaction_id: None,
        max_attempts: None,
        ..CreateCallback::default()
    }
}

#[test]
fn bulk_on_a_filter_acts_only_on_the_confirmed_count_and_moves_queues_with_audit() {
    let p = InProcess::start();
    let ops = &p.api().state.ops;
    let boss = supervisor(vec![Scope::Admin]);
    let support = ListFilter { queue: Some("support".into()), ..Default::default() };
    p.rt.block_on(async {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(ops.create(&boss, booking(&format!("+1555070{i}"), "support")).await.unwrap().id);
        }
        ops.create(&boss, booking("+15550709", "sales")).await.unwrap();
        // A final callback matches the filter but cannot change: not counted.
        ops.cancel(&boss, &ids[2].to_string()).await.unwrap();
        assert_eq!(ops.matching(&boss, &support).await.unwrap().len(), 2);
        assert_eq!(ops.matching(&boss, &ListFilter { status: Some(Status::Cancelled), ..support.clone() }).await.unwrap().len(), 0);

        // Confirmed for another count: refused, nothing changes.
        match ops.bulk_matching(&boss, &support, 3, BulkAction::Move("sales".into())).await {
            Err(OpsError::CountChanged { matched: 2, confirmed: 3 }) => {}
            other => panic!("expected count_changed, got {other:?}"),
        }
        assert_eq!(ops.matching(&boss, &support).await.unwrap().len(), 2);

        // A read-only viewer and an agent may not act in bulk.
        let viewer = supervisor(vec![Scope::CallbacksRead]);
        assert!(matches!(ops.bulk_matching(&viewer, &support, 2, BulkAction::Cancel).await, Err(OpsError::NoBulk { .. })));
        let agent = Actor::Agent { id: "alice".into(), queues: vec!["support".into()] };
        assert!(matches!(ops.bulk_matching(&agent, &support, 2, BulkAction::Cancel).await, Err(OpsError::NoBulk { .. })));
        let e = ops.move_queue(&agent, &ids[0].to_string(), "sales".into()).await.unwrap_err();
        assert!(matches!(e, OpsError::MayNotChange { .. }), "{e}");
        // Even its own: moving queues is a supervisor's action.
        let own = ops.create(&agent, booking("+15550708", "support")).await.unwrap();
        let e = ops.move_queue(&agent, &own.id.to_string(), "sales".into()).await.unwrap_err();
        assert_eq!((e.code(), e.field()), ("forbidden", Some("queue")));
        ops.cancel(&agent, &own.id.to_string()).await.unwrap();

        // Confirmed: both move, each and the whole audited.
        let done = ops.bulk_matching(&boss, &support, 2, BulkAction::Move("sales".into())).await.unwrap();
        assert_eq!((done.done.len(), done.refused.len()), (2, 0));
        assert!(done.done.iter().all(|c| c.queue == "sales"));
        assert_eq!(ops.matching(&boss, &support).await.unwrap().len(), 0);
        let sales = ops.book.stats(Some("sales")).await.unwrap();
        assert_eq!((sales.requested, sales.pending), (3, 3));
        let audit = ops.book.audit_page(20, None).await.unwrap().items;
        let entries: Vec<(String, String, String)> = audit.iter().map(|(_, e)| (e.action.clone(), e.target.clone(), e.detail.clone())).collect();
        assert_eq!(entries[0], ("bulk.move".into(), "filter queue=support".into(), "queue=sales: 2 done, 0 refused".into()));
        assert_eq!(entries.iter().filter(|e| e.0 == "callback.move").count(), 2);

        // Cancel every scheduled callback of `sales`.
        let sales_f = ListFilter { queue: Some("sales".into()), ..Default::default() };
        let done = ops.bulk_matching(&boss, &sales_f, 3, BulkAction::Cancel).await.unwrap();
        assert_eq!(done.done.len(), 3);
        assert_eq!(ops.book.stats(None).await.unwrap().pending, 0);
    });
}

#[test]
fn patch_moves_a_callback_to_another_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    let (st, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&json!({"phone": "+15550720", "queue": "support", "owner": "alice", "when": "tomorrow 10am"}).to_string()));
    assert_eq!(st, 201, "{cb}");
    let id = cb["id"].as_str().unwrap();
    let patch = |b: Value| s.req("PATCH", &format!("/v1/callbacks/{id}"), Some(RW), Some(&b.to_string()));
    let code = |v: &Value| (v["error"]["code"].as_str().map(str::to_string), v["error"]["field"].as_str().map(str::to_string));

    // alice does not serve `sales`; `nope` is no queue.
    let (st, e) = patch(json!({"queue": "sales"}));
    assert_eq!((st, code(&e)), (422, (Some("owner_not_in_queue".into()), Some("owner".into()))), "{e}");
    let (st, e) = patch(json!({"queue": "nope"}));
    assert_eq!((st, code(&e).0.as_deref()), (422, Some("unknown_queue")), "{e}");

    // Handing it to bob and moving it in one change works; the due time is
    // clipped to sales' window (business hours, New York).
    let (st, v) = patch(json!({"queue": "sales", "owner": "bob"}));
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["queue"].as_str(), v["owner"].as_str()), (Some("sales"), Some("bob")));
    let (_, list) = s.req("GET", "/v1/callbacks?queue=sales", Some(RO), None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, audit) = s.req("GET", "/v1/audit", Some(ADMIN), None);
    assert_eq!(audit["items"][0]["action"], "callback.change");
    assert!(audit["items"][0]["detail"].as_str().unwrap().contains("queue=sales"), "{audit}");
}
