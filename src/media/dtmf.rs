//! DTMF: RFC 4733 telephone-events in and out, and SIP INFO bodies
//! (`application/dtmf-relay`, `application/dtmf`) as a fallback in.
//!
//! Durations are in RTP timestamp ticks of the telephone-event clock
//! (8000 Hz for G.711 calls).

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtmfError {
    #[error("telephone-event payload of {len} bytes is shorter than 4")]
    Short { len: usize },
    #[error("`{0}` is not a DTMF digit")]
    NotADigit(String),
    #[error("DTMF duration {ms} ms is outside 40..=8000 ms")]
    Duration { ms: u128 },
    #[error("SIP INFO body has no Signal")]
    NoSignal,
}

/// Event codes 0–15 are the DTMF keys, 16 is flash (RFC 4733 §3.2, Table 3).
pub fn event_to_char(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

pub fn char_to_event(c: char) -> Option<u8> {
    Some(match c.to_ascii_uppercase() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        l @ 'A'..='D' => l as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The 4-byte payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in −dBm0 (0..=63).
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(p: &[u8]) -> Result<Self, DtmfError> {
        if p.len() < 4 {
            return Err(DtmfError::Short { len: p.len() });
        }
        Ok(Self { event: p[0], end: p[1] & 0x80 != 0, volume: p[1] & 0x3F, duration: u16::from_be_bytes([p[2], p[3]]) })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (self.end as u8) << 7 | (self.volume & 0x3F), d[0], d[1]]
    }
}

/// A key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub event: u8,
    pub digit: Option<char>,
    /// RTP timestamp of the event start.
    pub timestamp: u32,
    /// Length in timestamp ticks.
    pub duration: u32,
    pub volume: u8,
    /// False when the end packets were lost and a later event or `flush` closed it.
    pub ended: bool,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    duration: u32,
    volume: u8,
}

/// Decodes incoming telephone-event packets of one stream. Events are keyed
/// by their timestamp (§2.5.2), so a lost start packet does not lose the
/// digit and the three redundant end packets report it once.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    current: Option<Current>,
    last_done: Option<u32>,
    out: VecDeque<DtmfDigit>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// A telephone-event packet (its RTP timestamp and payload). Call
    /// `poll_digit` until `None` afterwards.
    pub fn handle_packet(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        if self.last_done == Some(timestamp) {
            return Ok(()); // redundant end or a late update of a finished event
        }
        if let Some(done) = self.last_done {
            if (timestamp.wrapping_sub(done) as i32) < 0 {
                return Ok(()); // an older event arriving late
            }
        }
        match &mut self.current {
            Some(c) if c.timestamp == timestamp => {
                c.duration = c.duration.max(ev.duration as u32);
                c.volume = ev.volume;
            }
            Some(c) if (timestamp.wrapping_sub(c.timestamp) as i32) < 0 => return Ok(()),
            _ => {
                self.close_current(false);
                self.current = Some(Current { timestamp, event: ev.event, duration: ev.duration as u32, volume: ev.volume });
            }
        }
        if ev.end {
            self.close_current(true);
        }
        Ok(())
    }

    fn close_current(&mut self, ended: bool) {
        if let Some(c) = self.current.take() {
            self.last_done = Some(c.timestamp);
            self.out.push_back(DtmfDigit { event: c.event, digit: event_to_char(c.event), timestamp: c.timestamp, duration: c.duration, volume: c.volume, ended });
        }
    }

    /// Reports an event whose end never came (call this at the end of the
    /// stream, or when no event packet arrived for a while).
    pub fn flush(&mut self) {
        self.close_current(false);
    }

    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        self.out.pop_front()
    }
}

/// One outgoing telephone-event packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// When to send it, from the event start.
    pub offset: Duration,
    pub marker: bool,
    pub payload: [u8; 4],
}

/// Interval between updates (and between the end retransmissions).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(20);

/// The packets for one key press (RFC 4733 §2.5.1): the first with the
/// marker bit, an update every 20 ms with the growing duration, and the final
/// duration three times with the end bit (§2.5.1.4). All of them carry the
/// event's start timestamp, which the caller supplies to the session.
pub fn generate(digit: char, length: Duration, volume: u8, clock_rate: u32) -> Result<Vec<DtmfPacket>, DtmfError> {
    let event = char_to_event(digit).ok_or_else(|| DtmfError::NotADigit(digit.to_string()))?;
    if !(40..=8000).contains(&length.as_millis()) {
        return Err(DtmfError::Duration { ms: length.as_millis() });
    }
    let total = (length.as_nanos() * clock_rate as u128 / 1_000_000_000) as u32;
    let step = clock_rate / 50;
    let mut out = Vec::new();
    let mut k = 0u32;
    loop {
        let d = ((k + 1) * step).min(total);
        let end = d == total;
        let reps = if end { 3 } else { 1 };
        for r in 0..reps {
            let n = k + r;
            let ev = TelephoneEvent { event, end, volume: volume.min(63), duration: d.min(u16::MAX as u32) as u16 };
            out.push(DtmfPacket { offset: UPDATE_INTERVAL * n, marker: n == 0, payload: ev.to_bytes() });
        }
        if end {
            return Ok(out);
        }
        k += 1;
    }
}

/// Paces the packets of one key press (sans-IO, like the player): packet
/// *k* is due at `start + offset_k`; all carry media position `position`
/// (the event's start timestamp, RFC 4733 §2.5.1.1).
#[derive(Debug, Clone)]
pub struct DtmfSender {
    packets: Vec<DtmfPacket>,
    next: usize,
    start: std::time::Instant,
    position: u64,
    payload_type: u8,
}

/// One packet ready for `RtpSession::send(now, payload_type, marker, position, &payload)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSend {
    pub payload_type: u8,
    pub marker: bool,
    pub position: u64,
    pub payload: [u8; 4],
}

impl DtmfSender {
    /// `position`: the stream's media position when the key press starts.
    pub fn new(digit: char, length: Duration, volume: u8, clock_rate: u32, payload_type: u8, start: std::time::Instant, position: u64) -> Result<Self, DtmfError> {
        Ok(Self { packets: generate(digit, length, volume, clock_rate)?, next: 0, start, position, payload_type })
    }

    /// When the next packet is due; `None` when all were sent.
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.packets.get(self.next).map(|p| self.start + p.offset)
    }

    /// The next packet if due by `now`; call until `None`.
    pub fn poll_packet(&mut self, now: std::time::Instant) -> Option<DtmfSend> {
        let p = self.packets.get(self.next)?;
        if now < self.start + p.offset {
            return None;
        }
        self.next += 1;
        Some(DtmfSend { payload_type: self.payload_type, marker: p.marker, position: self.position, payload: p.payload })
    }

    /// Media position after the event (where audio resumes).
    pub fn end_position(&self) -> u64 {
        let last = self.packets.last().map(|p| TelephoneEvent::parse(&p.payload).map(|e| e.duration as u64).unwrap_or(0)).unwrap_or(0);
        self.position + last
    }
}

/// A digit received in a SIP INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    pub digit: char,
    pub duration_ms: Option<u32>,
}

fn signal_char(v: &str) -> Result<char, DtmfError> {
    let v = v.trim();
    // Some gateways send the event number for * and # (10, 11).
    match v {
        "10" => return Ok('*'),
        "11" => return Ok('#'),
        _ => {}
    }
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if char_to_event(c).is_some() => Ok(c.to_ascii_uppercase()),
        _ => Err(DtmfError::NotADigit(v.to_owned())),
    }
}

/// `application/dtmf-relay`: `Signal=5\r\nDuration=160\r\n` (keys case-insensitive).
pub fn parse_dtmf_relay(body: &str) -> Result<InfoDigit, DtmfError> {
    let mut digit = None;
    let mut duration_ms = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = Some(signal_char(v)?),
            "duration" => duration_ms = v.trim().parse().ok(),
            _ => {}
        }
    }
    Ok(InfoDigit { digit: digit.ok_or(DtmfError::NoSignal)?, duration_ms })
}

/// `application/dtmf`: the body is the digit itself.
pub fn parse_dtmf(body: &str) -> Result<InfoDigit, DtmfError> {
    if body.contains('=') {
        return parse_dtmf_relay(body);
    }
    Ok(InfoDigit { digit: signal_char(body)?, duration_ms: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent { event, end, volume: 10, duration }.to_bytes()
    }

    fn digits(r: &mut DtmfReceiver) -> Vec<DtmfDigit> {
        std::iter::from_fn(|| r.poll_digit()).collect()
    }

    #[test]
    fn payload_layout() {
        let b = TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 }.to_bytes();
        assert_eq!(b, [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&b).unwrap(), TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 });
        assert_eq!(TelephoneEvent::parse(&b[..3]), Err(DtmfError::Short { len: 3 }));
    }

    #[test]
    fn redundant_end_packets_report_once() {
        let mut r = DtmfReceiver::new();
        for (d, end) in [(160, false), (320, false), (480, false), (640, true), (640, true), (640, true)] {
            r.handle_packet(1000, &ev(5, end, d)).unwrap();
        }
        let got = digits(&mut r);
        assert_eq!(got, vec![DtmfDigit { event: 5, digit: Some('5'), timestamp: 1000, duration: 640, volume: 10, ended: true }]);
        // A late update of the same event changes nothing.
        r.handle_packet(1000, &ev(5, false, 480)).unwrap();
        assert!(digits(&mut r).is_empty());
    }

    #[test]
    fn lost_start_and_lost_end() {
        let mut r = DtmfReceiver::new();
        // Start and first update lost: the digit is still seen.
        r.handle_packet(2000, &ev(11, false, 480)).unwrap();
        r.handle_packet(2000, &ev(11, true, 800)).unwrap();
        // All end packets of the next event lost: the one after closes it.
        r.handle_packet(5000, &ev(1, false, 160)).unwrap();
        r.handle_packet(5000, &ev(1, false, 320)).unwrap();
        r.handle_packet(9000, &ev(2, false, 160)).unwrap();
        r.flush();
        let got: Vec<_> = digits(&mut r).iter().map(|d| (d.digit, d.duration, d.ended)).collect();
        assert_eq!(got, vec![(Some('#'), 800, true), (Some('1'), 320, false), (Some('2'), 160, false)]);
        // An old event's end arriving after a newer one is ignored.
        r.handle_packet(5000, &ev(1, true, 400)).unwrap();
        assert!(digits(&mut r).is_empty());
    }

    #[test]
    fn two_presses_of_the_same_key_are_two_digits() {
        let mut r = DtmfReceiver::new();
        for ts in [100u32, 2000] {
            r.handle_packet(ts, &ev(7, false, 160)).unwrap();
            for _ in 0..3 {
                r.handle_packet(ts, &ev(7, true, 320)).unwrap();
            }
        }
        assert_eq!(digits(&mut r).len(), 2);
    }

    #[test]
    fn generated_packets() {
        let p = generate('9', Duration::from_millis(100), 10, 8000).unwrap();
        let durs: Vec<_> = p.iter().map(|x| TelephoneEvent::parse(&x.payload).unwrap()).map(|e| (e.duration, e.end)).collect();
        assert_eq!(durs, vec![(160, false), (320, false), (480, false), (640, false), (800, true), (800, true), (800, true)]);
        assert!(p[0].marker && p[1..].iter().all(|x| !x.marker));
        let offs: Vec<_> = p.iter().map(|x| x.offset.as_millis()).collect();
        assert_eq!(offs, vec![0, 20, 40, 60, 80, 100, 120]);
        // Fed back to a receiver, it is one '9' of 100 ms.
        let mut r = DtmfReceiver::new();
        for x in &p {
            r.handle_packet(77, &x.payload).unwrap();
        }
        let d = digits(&mut r);
        assert_eq!((d.len(), d[0].digit, d[0].duration), (1, Some('9'), 800));
        assert!(generate('x', Duration::from_millis(100), 10, 8000).is_err());
        assert!(generate('1', Duration::from_millis(10), 10, 8000).is_err());
        // Non-multiple of 20 ms ends with the exact length.
        let p = generate('*', Duration::from_millis(90), 10, 8000).unwrap();
        assert_eq!(TelephoneEvent::parse(&p.last().unwrap().payload).unwrap().duration, 720);
    }

    #[test]
    fn sender_paces_from_its_start() {
        let t0 = std::time::Instant::now();
        let mut s = DtmfSender::new('4', Duration::from_millis(60), 12, 8000, 101, t0, 16_000).unwrap();
        assert_eq!(s.poll_timeout(), Some(t0));
        let first = s.poll_packet(t0).unwrap();
        assert!(first.marker && first.position == 16_000 && first.payload_type == 101);
        assert!(s.poll_packet(t0 + Duration::from_millis(19)).is_none());
        // Woken late: everything due comes at once, all at the event's position.
        let rest: Vec<_> = std::iter::from_fn(|| s.poll_packet(t0 + Duration::from_secs(1))).collect();
        assert_eq!(rest.len(), 4); // 320, then 480 ×3 with the end bit
        assert!(rest.iter().all(|p| p.position == 16_000 && !p.marker));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.end_position(), 16_000 + 480);
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(parse_dtmf_relay("Signal=5\r\nDuration=160\r\n").unwrap(), InfoDigit { digit: '5', duration_ms: Some(160) });
        assert_eq!(parse_dtmf_relay("signal= #\nduration = 250").unwrap(), InfoDigit { digit: '#', duration_ms: Some(250) });
        assert_eq!(parse_dtmf_relay("Signal=10\r\n").unwrap().digit, '*');
        assert_eq!(parse_dtmf_relay("Duration=160\r\n"), Err(DtmfError::NoSignal));
        assert!(parse_dtmf_relay("Signal=55\r\n").is_err());
        assert_eq!(parse_dtmf("d\r\n").unwrap(), InfoDigit { digit: 'D', duration_ms: None });
        assert_eq!(parse_dtmf("Signal=3").unwrap().digit, '3');
        assert!(parse_dtmf("").is_err());
    }
}
