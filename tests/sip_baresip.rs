//! baresip, a real softphone, registers to redial as agent `alice`, then unregisters
//! when it quits.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Setup;

#[test]
fn baresip_registers_as_an_agent() {
    let r = Setup::new().agent("alice", "alice-pw").start();
    let dir = tempfile::tempdir().unwrap();
    // baresip is told its own port; started again elsewhere if it cannot bind it.
    let (mut child, port) = common::start_baresip(|port| {
        // A minimal config: SIP on loopback only, no audio devices.
        std::fs::write(
            dir.path().join("config"),
            format!(
                "sip_listen\t127.0.0.1:{port}\nmodule_path\t/usr/lib/baresip/modules\nmodule\tg711.so\n\
                 module_app\taccount.so\naudio_player\tnone\naudio_source\tnone\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:alice@{};transport=udp>;auth_pass=alice-pw;regint=60\n", r.sip),
        )
        .unwrap();
        let mut c = Command::new("baresip");
        c.arg("-f").arg(dir.path()).args(["-t", "4"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    });
    let registered = r.logs.wait_for(&["agent registered", "agent=alice", &format!("127.0.0.1:{port}")], Duration::from_secs(5));
    // baresip quits after 4 s (-t) and unregisters; kill it if it hangs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(registered.is_some(), "baresip:\n{stdout}\nredial:\n{}", r.logs.lines().join("\n"));
    assert!(stdout.contains("200 OK"), "{stdout}");
    assert!(
        r.logs.wait_for(&["agent unregistered", "agent=alice"], Duration::from_secs(3)).is_some(),
        "{}",
        r.logs.lines().join("\n")
    );
}
