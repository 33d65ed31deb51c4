//! The endpoint in-process: the shared views the HTTP API reads (`TrunkStates`,
//! `AgentBindings`) follow what real peers do.

mod common;

use std::time::{Duration, Instant};

use common::Sipp;
use redial::config::Config;
use redial::sip::endpoint::Endpoint;

/// SIP on port 0: the test reads the endpoint's `local_addr`.
fn config(dir: &std::path::Path, carrier_port: u16) -> Config {
    std::fs::create_dir_all(dir.join("sip-profiles")).unwrap();
    std::fs::write(
        dir.join("redial.toml"),
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [[agents]]\nid = \"alice\"\npassword = \"alice-pw\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("sip-profiles/carrier1.toml"),
        format!(
            "proxy = \"sip:127.0.0.1:{carrier_port}\"\ndomain = \"carrier.test\"\nregister = true\n\
             username = \"trunk1\"\npassword = \"s3cret\"\nexpires = 300\noptions_ping = \"0\"\n"
        ),
    )
    .unwrap();
    Config::load(Some(&dir.join("redial.toml"))).unwrap()
}

async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_and_agent_views_follow_the_peers() {
    let carrier = tokio::task::spawn_blocking(|| Sipp::new("carrier_registrar.xml").timeout(Duration::from_secs(20)).spawn()).await.unwrap();
    let carrier_port = carrier.port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), carrier_port);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ep = Endpoint::start(&cfg, stop_rx).await.unwrap();

    let trunks = ep.trunks.clone();
    let registered = wait_until(Duration::from_secs(5), || trunks.read().unwrap().get("carrier1").is_some_and(|t| t.registered)).await;
    let t = trunks.read().unwrap().get("carrier1").cloned().unwrap();
    assert!(registered, "{t:?}");
    // The registrar granted 10 s (Contact expires=10), not the 300 we asked for.
    let left = t.expires_in(Instant::now()).unwrap();
    assert!((5..=10).contains(&left), "{t:?}");
    assert!(t.up && t.register && t.last_error.is_none(), "{t:?}");

    let sip = ep.local_addr;
    let agent = tokio::task::spawn_blocking(move || Sipp::new("agent_register.xml").remote(sip).args_auth("alice", "alice-pw").run())
        .await
        .unwrap();
    assert!(agent.ok(), "{agent}");
    let agents = ep.agents.clone();
    let b = agents.read().unwrap().get("alice").cloned().unwrap_or_default();
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].contact.starts_with("sip:alice@127.0.0.1:"), "{b:?}");
    assert!((100..=120).contains(&b[0].expires_in(Instant::now())), "{b:?}");

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(6), ep.join()).await.expect("endpoint stops");
    drop(carrier);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_registrar_shows_as_last_error() {
    let carrier =
        tokio::task::spawn_blocking(|| Sipp::new("carrier_registrar_403.xml").timeout(Duration::from_secs(5)).timeout_ok().spawn()).await.unwrap();
    let carrier_port = carrier.port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), carrier_port);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ep = Endpoint::start(&cfg, stop_rx).await.unwrap();
    let trunks = ep.trunks.clone();
    let failed = wait_until(Duration::from_secs(4), || {
        trunks.read().unwrap().get("carrier1").is_some_and(|t| t.last_error.as_deref().is_some_and(|e| e.contains("403")))
    })
    .await;
    let t = trunks.read().unwrap().get("carrier1").cloned().unwrap();
    assert!(failed && !t.registered && t.expires_at.is_none(), "{t:?}");
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(6), ep.join()).await.expect("endpoint stops");
    drop(carrier);
}
