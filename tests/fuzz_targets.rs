//! The fuzz targets beyond SIP (`fuzz/fuzz_targets/targets.rs`) on the stable toolchain:
//! each runs over its seed corpus, every kept crash input in `fuzz/regressions/<target>/`,
//! and seeded random inputs (fresh bytes and mutations of the seeds: bit flips, byte
//! edits, splices, truncations, repeated chunks).
//!
//! In `cargo test` each target gets a fixed number of inputs (deterministic, the same
//! every run). For a long run: `REDIAL_FUZZ_SECS=300 cargo test --release --test
//! fuzz_targets -- --nocapture` (and `REDIAL_FUZZ_SEED` for another sequence); a panic
//! prints the input's file, written to `fuzz/artifacts/<target>/`. With cargo-fuzz
//! installed, `cargo +nightly fuzz run <target>` runs the same bodies under libFuzzer.

#[path = "../fuzz/fuzz_targets/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ITERATIONS: usize = 3_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: Option<&str>) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.retain(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)));
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.random_ratio(1, 8) {
        let n = rng.random_range(0..256);
        return (0..n).map(|_| rng.random()).collect();
    }
    let mut d = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        let len = d.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] = *[0u8, 0xff, b'\n', b'=', b'"', b':', b'[', b'0', b' ', 0x7f].get(rng.random_range(0..10)).unwrap();
            }
            2 if len > 0 => d.truncate(rng.random_range(0..len)),
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..len.min(i + 64) + 1);
                let chunk = d[i..j].to_vec();
                for _ in 0..rng.random_range(1..8) {
                    d.splice(i..i, chunk.iter().copied());
                }
            }
            4 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let i = rng.random_range(0..other.len());
                    let at = rng.random_range(0..=len);
                    d.splice(at..at, other[i..].iter().copied().take(64));
                }
            }
            5 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..len.min(i + 16) + 1);
                d.drain(i..j);
            }
            _ => {
                let at = rng.random_range(0..=len);
                let b: u8 = rng.random();
                d.insert(at, b);
            }
        }
        if d.len() > 1 << 16 {
            d.truncate(1 << 16);
        }
    }
    d
}

/// Runs `target` on every seed and regression input, then on random ones; panics
/// with the path of the saved input when the target panics.
fn run(name: &str, target: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    let regressions = files(&root().join("fuzz/regressions").join(name), None);
    let check = |input: &[u8], what: &str| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let dir = root().join("fuzz/artifacts").join(name);
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("crash-{:016x}", fnv(input)));
            let _ = std::fs::write(&path, input);
            panic!("{name}: {what} input panicked; saved as {}", path.display());
        }
    };
    for s in &seeds {
        check(s, "seed");
    }
    for r in &regressions {
        check(r, "regression");
    }
    let seed: u64 = std::env::var("REDIAL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(4475);
    let budget = std::env::var("REDIAL_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let mut rng = StdRng::seed_from_u64(seed ^ fnv(name.as_bytes()));
    let started = Instant::now();
    let mut n = 0usize;
    loop {
        match budget {
            Some(b) if started.elapsed() >= b => break,
            None if n >= ITERATIONS => break,
            _ => {}
        }
        let input = mutate(&mut rng, &seeds);
        check(&input, "random");
        n += 1;
    }
    if budget.is_some() {
        eprintln!("{name}: {n} inputs in {:.0?} ({} seeds, {} regressions)", started.elapsed(), seeds.len(), regressions.len());
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}

const SDP_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 111 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

#[test]
fn fuzz_sdp() {
    let mut seeds = vec![SDP_OFFER.as_bytes().to_vec(), SDP_OFFER.replace("sendrecv", "inactive").into_bytes(), SDP_OFFER.replace("49170", "0").into_bytes()];
    // The SDP bodies of the RFC 4475 messages.
    for m in files(&root().join("tests/rfc4475/msgs"), Some("sip")) {
        if let Some(i) = m.windows(4).position(|w| w == b"v=0\r") {
            seeds.push(m[i..].to_vec());
        }
    }
    run("sdp", targets::sdp, seeds);
}

#[test]
fn fuzz_rtp_rtcp() {
    let rtp = {
        let mut p = vec![0x80, 0x00, 0x12, 0x34, 0, 0, 0x03, 0x20, 0xde, 0xad, 0xbe, 0xef];
        p.extend(std::iter::repeat_n(0xffu8, 160));
        p
    };
    // SR with one report block + SDES CNAME, and a BYE (RFC 3550 §6.4.1, §6.5, §6.6).
    let mut sr = vec![0x81, 200, 0, 12, 1, 2, 3, 4];
    sr.extend([0u8; 20]);
    sr.extend([5, 6, 7, 8, 0, 0, 0, 1, 0, 0, 0x12, 0x34, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
    sr.extend([0x81, 202, 0, 3, 1, 2, 3, 4, 1, 3, b'a', b'b', b'c', 0, 0, 0]);
    let bye = vec![0x81, 203, 0, 1, 1, 2, 3, 4];
    let padded = vec![0xa0, 0x65, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 0, 0, 0, 4];
    run("rtp_rtcp", targets::rtp_rtcp, vec![rtp, sr, bye, padded]);
}

#[test]
fn fuzz_rfc4733() {
    let seeds = vec![
        vec![5, 0x8a, 0x03, 0x20],
        vec![11, 0x0a, 0x00, 0xa0],
        vec![16, 0x80, 0xff, 0xff],
        b"Signal=5\r\nDuration=160\r\n".to_vec(),
        b"Signal= #\r\nDuration= 250\r\n".to_vec(),
        b"d=*\r\n".to_vec(),
    ];
    run("rfc4733", targets::rfc4733, seeds);
}

#[test]
fn fuzz_wav() {
    let mut seeds = files(&root().join("prompts"), Some("wav"));
    seeds.truncate(4);
    for s in &mut seeds {
        // The headers are what matters; keep the inputs small.
        s.truncate(512);
    }
    run("wav", targets::wav, seeds);
}

#[test]
fn fuzz_config() {
    let main = std::fs::read(root().join("docker/redial.toml")).unwrap();
    let extra = b"[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"data/x.redb\"\n\
[[agents]]\nid = \"alice\"\npassword = \"pw\"\n[[queues]]\nname = \"q\"\ntimezone = \"Europe/Paris\"\nhours = \"mon-fri 09:00-20:00\"\n\
[[tokens]]\nname = \"t\"\nsecret = \"0123456789\"\nscopes = [\"admin\"]\n"
        .to_vec();
    let mut seeds = Vec::new();
    for profile in files(&root().join("sip-profiles.example"), Some("toml")) {
        let mut s = extra.clone();
        s.push(0);
        s.extend(profile);
        seeds.push(s);
    }
    // docker/redial.toml names absolute directories: only its syntax is a seed here.
    seeds.push(main);
    seeds.push(extra);
    // Each input writes files: fewer of them in `cargo test`.
    run("config", targets::config, seeds);
}

#[test]
fn fuzz_api_json() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"phone":"+15550100","queue":"default","scheduled_at":"2030-01-01T10:00:00Z","timezone":"Europe/Paris","owner":"alice","notes":"x"}"#,
        r#"{"phone":"+15550100","queue":"default","when":"tomorrow morning","timezone":"Asia/Kolkata"}"#,
        r#"{"interaction_id":"abc","owner":"me"}"#,
        r#"{"scheduled_at":null,"owner":null,"notes":"n"}"#,
        r#"{"scheduled_at":"2030-01-01T10:00:00+05:30","mode":"agent_first"}"#,
        r#"{"state":"away"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("api_json", targets::api_json, seeds);
}

#[test]
fn fuzz_sip_message() {
    let seeds = files(&root().join("tests/rfc4475/msgs"), Some("sip"));
    assert_eq!(seeds.len(), 49);
    run("sip_message", targets::sip_message, seeds);
}
