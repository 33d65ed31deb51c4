//! Test support for the call state machines (the dialler's flows and the
//! inbound call): a machine with a virtual clock. Time moves only when a
//! test moves it, to the machine's own next deadline or by a given step,
//! so every timer path runs at once and the same way on any machine.

use std::time::{Duration, Instant};

/// A sans-IO call machine: events and deadlines in, actions out.
pub(crate) trait Machine {
    type Event;
    type Action;
    fn start(&mut self, now: Instant, out: &mut Vec<Self::Action>);
    fn on_event(&mut self, now: Instant, ev: Self::Event, out: &mut Vec<Self::Action>);
    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Self::Action>);
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The machine and the virtual now.
pub(crate) struct Sim<M> {
    pub m: M,
    pub now: Instant,
}

impl<M: Machine> Sim<M> {
    /// Starts `m`; returns its first actions.
    pub fn start(mut m: M) -> (Self, Vec<M::Action>) {
        let now = Instant::now();
        let mut out = Vec::new();
        m.start(now, &mut out);
        (Self { m, now }, out)
    }

    pub fn ev(&mut self, ev: M::Event) -> Vec<M::Action> {
        let mut out = Vec::new();
        self.m.on_event(self.now, ev, &mut out);
        out
    }

    /// Moves the clock by `d` and lets the machine see it.
    pub fn after(&mut self, d: Duration) -> Vec<M::Action> {
        self.now += d;
        let mut out = Vec::new();
        self.m.on_timeout(self.now, &mut out);
        out
    }

    /// Moves the clock to the machine's next deadline.
    pub fn until_timeout(&mut self) -> Vec<M::Action> {
        let at = self.m.poll_timeout().expect("a deadline");
        assert!(at >= self.now, "a deadline in the past");
        self.after(at - self.now)
    }

    /// How long until the machine's next deadline.
    pub fn deadline_in(&self) -> Option<Duration> {
        self.m.poll_timeout().map(|at| at - self.now)
    }
}
