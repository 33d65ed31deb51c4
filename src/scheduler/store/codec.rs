//! The compact, versioned binary encoding of stored values.
//!
//! Hand-written rather than serde + a binary format because the layout is a
//! durable contract: each value starts with its format version, integers are
//! LEB128 varints (times zig-zag encoded), strings are length-prefixed, and
//! enums use their fixed one-byte codes. A record with short notes is ~110
//! bytes. A reader meeting a newer version refuses it instead of guessing.

use crate::clock::Millis;
use crate::config::DialMode;
use crate::scheduler::model::{
    Amd, Attempt, Callback, CallbackId, Channel, Confidence, EndReason, Origin, Outcome, OwnerMode, Status, Timeline, TimezoneSource,
};
use crate::scheduler::when::WhenResolution;

/// Version byte of records and attempts written by this build.
pub const VALUE_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("value ends early")]
    Truncated,
    #[error("value format version {0} is newer than this build understands")]
    Version(u8),
    #[error("bad {0} code {1}")]
    Code(&'static str, u8),
    #[error("string is not UTF-8")]
    Utf8,
}

#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    pub fn time(&mut self, v: Millis) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn opt_time(&mut self, v: Option<Millis>) {
        match v {
            None => self.u8(0),
            Some(t) => {
                self.u8(1);
                self.time(t);
            }
        }
    }
    pub fn str(&mut self, s: &str) {
        self.var(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    /// `None` and `Some("")` differ: the length is shifted by one.
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.var(0),
            Some(s) => {
                self.var(s.len() as u64 + 1);
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }
    /// An optional one-byte code: 0 = none, else code + 1.
    pub fn opt_code(&mut self, c: Option<u8>) {
        self.u8(c.map_or(0, |c| c + 1));
    }
}

pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.0.split_first().ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }
    pub fn var(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::Truncated)
    }
    pub fn time(&mut self) -> Result<Millis, DecodeError> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    pub fn opt_time(&mut self) -> Result<Option<Millis>, DecodeError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.time()?),
        })
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.var()? as usize;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::Utf8)
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        let n = self.var()? as usize;
        if n == 0 {
            return Ok(None);
        }
        let b = self.bytes(n - 1)?;
        std::str::from_utf8(b).map(|s| Some(s.to_owned())).map_err(|_| DecodeError::Utf8)
    }
    pub fn opt_code(&mut self) -> Result<Option<u8>, DecodeError> {
        Ok(match self.u8()? {
            0 => None,
            c => Some(c - 1),
        })
    }
}

fn mode_code(m: DialMode) -> u8 {
    match m {
        DialMode::CustomerFirst => 0,
        DialMode::AgentFirst => 1,
    }
}

fn mode_from(c: u8) -> Result<DialMode, DecodeError> {
    match c {
        0 => Ok(DialMode::CustomerFirst),
        1 => Ok(DialMode::AgentFirst),
        c => Err(DecodeError::Code("mode", c)),
    }
}

pub fn encode_callback(c: &Callback) -> Vec<u8> {
    let mut w = Writer::with_capacity(96 + c.notes.as_ref().map_or(0, String::len));
    w.u8(VALUE_VERSION);
    w.var(c.id.0);
    w.u8(c.status.code());
    w.str(&c.phone);
    w.str(&c.queue);
    w.opt_str(c.owner.as_deref());
    w.u8(mode_code(c.mode));
    w.opt_time(c.scheduled_at);
    w.time(c.due_at);
    w.str(&c.timezone);
    w.var(u64::from(c.attempts));
    w.var(u64::from(c.max_attempts));
    w.opt_code(c.last_outcome.map(Outcome::code));
    w.u8(c.origin.code());
    w.opt_str(c.notes.as_deref());
    w.opt_str(c.interaction_id.as_deref());
    w.opt_str(c.caller_id.as_deref());
    w.time(c.created_at);
    // Later times as deltas from creation: smaller varints.
    w.time(c.updated_at - c.created_at);
    w.time(c.first_due_at - c.created_at);
    w.opt_time(c.owner_until.map(|t| t - c.created_at));
    w.opt_code(c.end_reason.map(EndReason::code));
    // Tail added with `when`/`skipped`. Records written before it end above and decode with
    // these absent; earlier builds stop reading before it, so both ways work
    // without a version bump. Omitted entirely when all are absent.
    let third_tail = c.channel != Channel::Voice;
    let second_tail = third_tail
        || c.caller_name.is_some()
        || c.reason.is_some()
        || c.confidence.is_some()
        || !c.owners.is_empty()
        || c.owner_mode != OwnerMode::Strict
        || c.timezone_source.is_some();
    if second_tail || c.when.is_some() || c.when_resolution.is_some() || c.skipped_by.is_some() {
        w.opt_str(c.when.as_deref());
        w.opt_code(c.when_resolution.map(WhenResolution::code));
        w.opt_str(c.skipped_by.as_deref());
    }
    // Second tail (caller name, reason, confidence, owners, owner mode,
    // timezone source), on the same terms: absent = all defaults, and builds
    // that predate it stop reading before it.
    if second_tail {
        w.opt_str(c.caller_name.as_deref());
        w.opt_str(c.reason.as_deref());
        w.var(c.confidence.map_or(0, |v| u64::from(v.raw()) + 1));
        w.var(c.owners.len() as u64);
        for o in &c.owners {
            w.str(o);
        }
        w.u8(c.owner_mode.code());
        w.opt_code(c.timezone_source.map(TimezoneSource::code));
    }
    // Third tail (channel), on the same terms: absent = `voice`.
    if third_tail {
        w.u8(c.channel.code());
    }
    w.0
}

pub fn decode_callback(b: &[u8]) -> Result<Callback, DecodeError> {
    let mut r = Reader(b);
    let v = r.u8()?;
    if v != VALUE_VERSION {
        return Err(DecodeError::Version(v));
    }
    let id = CallbackId(r.var()?);
    let sc = r.u8()?;
    let status = Status::from_code(sc).ok_or(DecodeError::Code("status", sc))?;
    let phone = r.str()?;
    let queue = r.str()?;
    let owner = r.opt_str()?;
    let mode = mode_from(r.u8()?)?;
    let scheduled_at = r.opt_time()?;
    let due_at = r.time()?;
    let timezone = r.str()?;
    let attempts = r.var()? as u32;
    let max_attempts = r.var()? as u32;
    let last_outcome = match r.opt_code()? {
        None => None,
        Some(c) => Some(Outcome::from_code(c).ok_or(DecodeError::Code("outcome", c))?),
    };
    let oc = r.u8()?;
    let origin = Origin::from_code(oc).ok_or(DecodeError::Code("origin", oc))?;
    let notes = r.opt_str()?;
    let interaction_id = r.opt_str()?;
    let caller_id = r.opt_str()?;
    let created_at = r.time()?;
    let updated_at = created_at + r.time()?;
    let first_due_at = created_at + r.time()?;
    let owner_until = r.opt_time()?.map(|d| created_at + d);
    let end_reason = match r.opt_code()? {
        None => None,
        Some(c) => Some(EndReason::from_code(c).ok_or(DecodeError::Code("end reason", c))?),
    };
    let (when, when_resolution, skipped_by) = if r.0.is_empty() {
        (None, None, None)
    } else {
        let when = r.opt_str()?;
        let res = match r.opt_code()? {
            None => None,
            Some(c) => Some(WhenResolution::from_code(c).ok_or(DecodeError::Code("when resolution", c))?),
        };
        (when, res, r.opt_str()?)
    };
    let (mut caller_name, mut reason, mut confidence, mut owners, mut owner_mode, mut timezone_source) =
        (None, None, None, Vec::new(), OwnerMode::Strict, None);
    if !r.0.is_empty() {
        caller_name = r.opt_str()?;
        reason = r.opt_str()?;
        confidence = match r.var()? {
            0 => None,
            v => Some(u16::try_from(v - 1).ok().and_then(Confidence::from_raw).ok_or(DecodeError::Code("confidence", 0xff))?),
        };
        let n = r.var()? as usize;
        // Each owner takes at least one byte: a count beyond that is corrupt.
        if n > r.0.len() {
            return Err(DecodeError::Truncated);
        }
        owners = (0..n).map(|_| r.str()).collect::<Result<_, _>>()?;
        let mc = r.u8()?;
        owner_mode = OwnerMode::from_code(mc).ok_or(DecodeError::Code("owner mode", mc))?;
        timezone_source = match r.opt_code()? {
            None => None,
            Some(c) => Some(TimezoneSource::from_code(c).ok_or(DecodeError::Code("timezone source", c))?),
        };
    }
    let channel = match r.0.is_empty() {
        true => Channel::Voice,
        false => {
            let c = r.u8()?;
            Channel::from_code(c).ok_or(DecodeError::Code("channel", c))?
        }
    };
    Ok(Callback {
        id,
        status,
        phone,
        queue,
        owner,
        mode,
        scheduled_at,
        due_at,
        timezone,
        attempts,
        max_attempts,
        last_outcome,
        origin,
        notes,
        interaction_id,
        caller_id,
        created_at,
        updated_at,
        first_due_at,
        owner_until,
        end_reason,
        when,
        when_resolution,
        skipped_by,
        caller_name,
        reason,
        confidence,
        owners,
        owner_mode,
        timezone_source,
        channel,
    })
}

pub fn encode_attempt(a: &Attempt) -> Vec<u8> {
    let mut w = Writer::with_capacity(32);
    w.u8(VALUE_VERSION);
    w.var(u64::from(a.attempt));
    w.time(a.started_at);
    w.time(a.ended_at - a.started_at);
    w.u8(a.outcome.code());
    w.var(a.sip_status.map_or(0, |s| u64::from(s) + 1));
    w.opt_code(a.amd.map(Amd::code));
    w.opt_str(a.agent.as_deref());
    w.opt_str(a.note.as_deref());
    // Timeline tail: a bitmap of present fields, then each
    // present one as a delta from `started_at`. Omitted when empty; older
    // attempts end above and decode with an empty timeline.
    if !a.timeline.is_empty() {
        let fields = a.timeline.fields();
        let mut bits = 0u8;
        for (i, (_, v)) in fields.iter().enumerate() {
            if v.is_some() {
                bits |= 1 << i;
            }
        }
        w.u8(bits);
        for (_, v) in fields {
            if let Some(t) = v {
                w.time(t - a.started_at);
            }
        }
    }
    w.0
}

pub fn decode_attempt(b: &[u8]) -> Result<Attempt, DecodeError> {
    let mut r = Reader(b);
    let v = r.u8()?;
    if v != VALUE_VERSION {
        return Err(DecodeError::Version(v));
    }
    let attempt = r.var()? as u32;
    let started_at = r.time()?;
    let ended_at = started_at + r.time()?;
    let oc = r.u8()?;
    let outcome = Outcome::from_code(oc).ok_or(DecodeError::Code("outcome", oc))?;
    let sip_status = match r.var()? {
        0 => None,
        s => Some((s - 1) as u16),
    };
    let amd = match r.opt_code()? {
        None => None,
        Some(c) => Some(Amd::from_code(c).ok_or(DecodeError::Code("amd", c))?),
    };
    let agent = r.opt_str()?;
    let note = r.opt_str()?;
    let mut timeline = Timeline::default();
    if !r.0.is_empty() {
        let bits = r.u8()?;
        let mut v = [None; 7];
        for (i, slot) in v.iter_mut().enumerate() {
            if bits & (1 << i) != 0 {
                *slot = Some(started_at + r.time()?);
            }
        }
        timeline = Timeline::from_fields(v);
    }
    Ok(Attempt { attempt, started_at, ended_at, outcome, sip_status, amd, agent, note, timeline })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_round_trips_and_is_small() {
        // Every field of the first layout away from its default; no tails.
        let c = Callback {
            id: CallbackId(0xdead_beef_0000_0001),
            status: Status::InProgress,
            mode: DialMode::AgentFirst,
            scheduled_at: Some(1_800_000_000_000),
            due_at: 1_800_000_060_000,
            attempts: 2,
            last_outcome: Some(Outcome::NoAnswer),
            origin: Origin::Agent,
            notes: Some("wants to talk about the invoice".into()),
            interaction_id: Some("int-42".into()),
            created_at: 1_799_999_000_000,
            updated_at: 1_800_000_070_000,
            first_due_at: 1_800_000_000_000,
            owner_until: Some(1_800_014_400_000),
            when: None,
            ..Callback::sample()
        };
        let b = encode_callback(&c);
        assert!(b.len() <= 140, "{} bytes", b.len());
        assert_eq!(decode_callback(&b).unwrap(), c);
        // The `when`/`skipped` tail round-trips, and a record without it (as written
        // before it existed) is exactly the old layout.
        let tailed = Callback {
            when: Some("kal subah".into()),
            when_resolution: Some(WhenResolution::Approximate),
            skipped_by: Some("inb-7".into()),
            status: Status::Skipped,
            end_reason: Some(EndReason::Reached),
            ..c.clone()
        };
        let tb = encode_callback(&tailed);
        assert_eq!(decode_callback(&tb).unwrap(), tailed);
        assert_eq!(decode_callback(&tb[..tb.len() - 1]), Err(DecodeError::Truncated));
        // The second tail round-trips alone (the first then written empty) and with it.
        let second = Callback {
            caller_name: Some("Acme Support".into()),
            reason: Some("driving".into()),
            confidence: Confidence::from_f64(0.85),
            owners: vec!["alice".into(), "bob".into()],
            owner_mode: OwnerMode::Preferred,
            timezone_source: Some(TimezoneSource::Number),
            ..c.clone()
        };
        let sb = encode_callback(&second);
        assert_eq!(decode_callback(&sb).unwrap(), second);
        assert_eq!(decode_callback(&sb[..sb.len() - 1]), Err(DecodeError::Truncated));
        let both = Callback { when: Some("later".into()), ..second.clone() };
        assert_eq!(decode_callback(&encode_callback(&both)).unwrap(), both);
        // A record with only the first tail is exactly as before: the second is all defaults.
        assert_eq!(encode_callback(&tailed).len(), tb.len());
        // The third tail (channel) round-trips alone (the others then written
        // empty), and a record without it reads as `voice`, as written before.
        let text = Callback { channel: Channel::Sms, ..c.clone() };
        let xb = encode_callback(&text);
        assert_eq!(decode_callback(&xb).unwrap(), text);
        assert_eq!(decode_callback(&xb[..xb.len() - 1]).unwrap().channel, Channel::Voice);
        assert_eq!(decode_callback(&encode_callback(&Callback { channel: Channel::Sms, ..both.clone() })).unwrap().channel, Channel::Sms);
        let only_res = Callback { when_resolution: Some(WhenResolution::Fallback), ..c.clone() };
        assert_eq!(decode_callback(&encode_callback(&only_res)).unwrap(), only_res);
        let mut newer = b.clone();
        newer[0] = VALUE_VERSION + 1;
        assert_eq!(decode_callback(&newer), Err(DecodeError::Version(VALUE_VERSION + 1)));
        assert_eq!(decode_callback(&b[..b.len() - 1]), Err(DecodeError::Truncated));
    }

    #[test]
    fn attempt_round_trips() {
        let a = Attempt {
            attempt: 3,
            started_at: 5,
            ended_at: 65_000,
            outcome: Outcome::Busy,
            sip_status: Some(486),
            amd: Some(Amd::Unknown),
            agent: Some("bob".into()),
            note: None,
            timeline: Timeline::default(),
        };
        let plain = encode_attempt(&a);
        assert_eq!(decode_attempt(&plain).unwrap(), a);
        let timed = Attempt {
            timeline: Timeline { dialed_at: Some(5), ringing_at: Some(900), answered_at: Some(4_000), bridged_at: Some(6_500), ..Timeline::default() },
            ..a.clone()
        };
        let tb = encode_attempt(&timed);
        // An empty timeline costs nothing; a full one a few bytes.
        assert!(tb.len() <= plain.len() + 1 + 7 * 3, "{} vs {}", tb.len(), plain.len());
        assert_eq!(decode_attempt(&tb).unwrap(), timed);
        assert_eq!(decode_attempt(&tb[..tb.len() - 1]), Err(DecodeError::Truncated));
        let none = Attempt { sip_status: None, amd: None, agent: None, note: Some(String::new()), ..a };
        assert_eq!(decode_attempt(&encode_attempt(&none)).unwrap(), none);
    }
}
