//! Two transaction layers wired by an in-memory UDP network with seeded loss, stepped in virtual
//! time from one deadline to the next (in the manner of quinn's `Pair::step`).

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rsip::{SipMessage, StatusCode};

use super::*;

/// A datagram in flight.
struct Packet {
    at: Instant,
    to: usize,
    from: Peer,
    bytes: String,
}

/// Two layers, `0` at 127.0.0.1:5060 and `1` at 127.0.0.1:5070, over lossy UDP.
pub(crate) struct Pair {
    pub layers: [TransactionLayer; 2],
    pub peers: [Peer; 2],
    pub now: Instant,
    pub t0: Instant,
    /// Every event each side saw, with its time.
    pub events: [Vec<(Instant, TransactionEvent)>; 2],
    /// Datagrams each side sent (before loss).
    pub sent: [usize; 2],
    in_flight: Vec<Packet>,
    rng: SmallRng,
    loss: f64,
    latency: Duration,
}

/// The TUs of both sides: react to events (possibly sending through the layer) and may run
/// their own timers (e.g. a 2xx retransmitter), stepped by the pair like the layers' timers.
pub(crate) trait Tu {
    fn on_event(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer, event: &TransactionEvent);

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant, _layers: &mut [TransactionLayer; 2]) {}
}

impl<F: FnMut(usize, Instant, &mut TransactionLayer, &TransactionEvent)> Tu for F {
    fn on_event(&mut self, side: usize, now: Instant, layer: &mut TransactionLayer, event: &TransactionEvent) {
        self(side, now, layer, event)
    }
}

impl Pair {
    pub fn new(timers: SipTimers, seed: u64, loss: f64) -> Self {
        let t0 = Instant::now();
        Self {
            layers: [TransactionLayer::new(timers), TransactionLayer::new(timers)],
            peers: [udp(5060), udp(5070)],
            now: t0,
            t0,
            events: [vec![], vec![]],
            sent: [0, 0],
            in_flight: vec![],
            rng: SmallRng::seed_from_u64(seed),
            loss,
            latency: Duration::from_millis(20),
        }
    }

    fn index_of(&self, peer: &Peer) -> usize {
        if *peer == self.peers[0] {
            0
        } else {
            1
        }
    }

    /// Moves every queued transmit onto the network and every event to the TU, until quiet.
    fn flush(&mut self, tu: &mut dyn Tu) {
        loop {
            let mut quiet = true;
            for side in 0..2 {
                while let Some(t) = self.layers[side].poll_transmit() {
                    quiet = false;
                    self.sent[side] += 1;
                    if self.rng.random::<f64>() < self.loss {
                        continue;
                    }
                    let to = self.index_of(&t.to);
                    // Through text and back, as the real transport would.
                    let bytes = t.message.to_string();
                    self.in_flight.push(Packet { at: self.now + self.latency, to, from: self.peers[side], bytes });
                }
                while let Some(e) = self.layers[side].poll_event() {
                    quiet = false;
                    tu.on_event(side, self.now, &mut self.layers[side], &e);
                    self.events[side].push((self.now, e));
                }
            }
            if quiet {
                return;
            }
        }
    }

    /// Advances to the next packet arrival or deadline and processes it. Returns false once
    /// nothing is in flight and no timer is armed.
    pub fn step(&mut self, tu: &mut dyn Tu) -> bool {
        self.flush(tu);
        let next = [
            self.in_flight.iter().map(|p| p.at).min(),
            self.layers[0].poll_timeout(),
            self.layers[1].poll_timeout(),
            tu.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { return false };
        assert!(next >= self.now, "time went backwards");
        self.now = next;
        let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|p| p.at <= next);
        self.in_flight = later;
        for p in due {
            let msg = SipMessage::try_from(p.bytes.as_str()).expect("our own messages parse");
            self.layers[p.to].handle_message(self.now, msg, p.from);
        }
        for layer in &mut self.layers {
            layer.handle_timeout(self.now);
        }
        tu.handle_timeout(self.now, &mut self.layers);
        self.flush(tu);
        true
    }

    /// Steps until quiet (bounded).
    pub fn run(&mut self, tu: &mut dyn Tu) {
        for _ in 0..100_000 {
            if !self.step(tu) {
                return;
            }
        }
        panic!("pair did not settle");
    }

    pub fn count(&self, side: usize, f: impl Fn(&TransactionEvent) -> bool) -> usize {
        self.events[side].iter().filter(|(_, e)| f(e)).count()
    }
}

/// Side 1 answers every request: `codes` in order (e.g. 180 then 486).
fn answering(codes: &'static [u16]) -> impl FnMut(usize, Instant, &mut TransactionLayer, &TransactionEvent) {
    move |side, now, layer, ev| {
        if let (1, TransactionEvent::Request { key, request, .. }) = (side, ev) {
            for code in codes {
                layer.send_response(now, key, response(request, *code)).unwrap();
            }
        }
    }
}

fn is_final(ev: &TransactionEvent, code: u16) -> bool {
    matches!(ev, TransactionEvent::Response { response, .. } if response.status_code.code() == code)
}

fn is_timeout(ev: &TransactionEvent) -> bool {
    matches!(ev, TransactionEvent::Timeout { .. })
}

#[test]
fn non_invite_completes_despite_30_percent_loss() {
    let mut lossy_runs = 0;
    for seed in 0..20 {
        let mut pair = Pair::new(SipTimers::default(), seed, 0.3);
        let mut tu = answering(&[200]);
        let now = pair.now;
        pair.layers[0].send_request(now, request("OPTIONS", "z9hG4bKopt", 1), pair.peers[1]).unwrap();
        pair.run(&mut tu);
        assert_eq!(pair.count(0, |e| is_final(e, 200)), 1, "seed {seed}: one final to the TU");
        assert_eq!(pair.count(0, is_timeout), 0, "seed {seed}");
        assert_eq!(pair.count(1, |e| matches!(e, TransactionEvent::Request { .. })), 1, "seed {seed}: TU saw one request");
        assert_eq!(pair.layers[0].len() + pair.layers[1].len(), 0, "seed {seed}: all terminated");
        if pair.sent[0] > 1 {
            lossy_runs += 1;
        }
    }
    assert!(lossy_runs > 0, "some seeds must actually lose packets");
}

#[test]
fn invite_completes_despite_30_percent_loss() {
    let mut lossy_runs = 0;
    for seed in 0..20 {
        let mut pair = Pair::new(SipTimers::default(), seed, 0.3);
        let mut tu = answering(&[180, 486]);
        let now = pair.now;
        pair.layers[0].send_request(now, request("INVITE", "z9hG4bKinv", 1), pair.peers[1]).unwrap();
        pair.run(&mut tu);
        assert_eq!(pair.count(0, |e| is_final(e, 486)), 1, "seed {seed}: one final to the TU");
        assert_eq!(pair.count(0, is_timeout), 0, "seed {seed}: no timer B");
        assert_eq!(pair.count(1, is_timeout), 0, "seed {seed}: ACK arrived before timer H");
        assert_eq!(pair.count(1, |e| matches!(e, TransactionEvent::Request { .. })), 1, "seed {seed}");
        assert_eq!(pair.layers[0].len() + pair.layers[1].len(), 0, "seed {seed}: all terminated");
        if pair.sent[0] > 2 || pair.sent[1] > 3 {
            lossy_runs += 1;
        }
    }
    assert!(lossy_runs > 0, "some seeds must actually lose packets");
}

#[test]
fn total_loss_fires_b_and_f_at_exactly_64_t1() {
    // Sends within 64*T1: 7 INVITEs (A) plus 11 OPTIONS (E) when T2 = 8*T1, 18 when T2 = 4*T1.
    for (timers, sends) in [(SipTimers::default(), 18), (fast_timers(), 25)] {
        for seed in 0..3 {
            let mut pair = Pair::new(timers, seed, 1.0);
            let mut tu = answering(&[200]);
            let now = pair.now;
            pair.layers[0].send_request(now, request("INVITE", "z9hG4bKinv", 1), pair.peers[1]).unwrap();
            pair.layers[0].send_request(now, request("OPTIONS", "z9hG4bKopt", 2), pair.peers[1]).unwrap();
            pair.run(&mut tu);
            let timeouts: Vec<Duration> = pair.events[0]
                .iter()
                .filter(|(_, e)| is_timeout(e))
                .map(|(at, _)| *at - pair.t0)
                .collect();
            assert_eq!(timeouts, vec![timers.t1 * 64, timers.t1 * 64]);
            assert!(pair.events[1].is_empty());
            assert_eq!(pair.sent[0], sends);
        }
    }
}

#[test]
fn lost_100_trying_path_server_sends_trying_itself() {
    // The TU never answers; the server transaction's own 100 Trying stops the client's timer A.
    let mut pair = Pair::new(SipTimers::default(), 7, 0.0);
    let mut tu = |_: usize, _: Instant, _: &mut TransactionLayer, _: &TransactionEvent| {};
    let now = pair.now;
    pair.layers[0].send_request(now, request("INVITE", "z9hG4bKinv", 1), pair.peers[1]).unwrap();
    for _ in 0..10 {
        pair.step(&mut tu);
    }
    assert_eq!(pair.sent[0], 1, "no INVITE retransmission after the 100");
    assert_eq!(pair.sent[1], 1, "one 100 Trying");
    let trying = &pair.events[0][0];
    assert!(matches!(&trying.1, TransactionEvent::Response { response, .. } if response.status_code == StatusCode::Trying));
    assert_eq!(trying.0 - pair.t0, Duration::from_millis(20 + 200 + 20));
}
