// Browser agents carrying real calls: the redial binary, a SIPp carrier (or caller)
// whose media is an RTP phone in this process, and Debian's chromium running the
// vendored JsSIP with a fake microphone. JsSIP registers over WebSocket; redial rings
// it with a WebRTC offer (ICE-lite, DTLS-SRTP, G.711); the browser answers; audio must
// flow both ways through redial's bridge: the browser's getStats() shows inbound audio
// with energy and rising bytes, and the phone receives the browser's audio with level.
// Customer-first (with the browser's keypad reaching the customer as RFC 4733, and the
// agent holding and resuming), agent-first, an inbound call, and the browser's WebSocket
// closing mid-call.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, launch, startRedialWs, sippUas, sippUac, until, rtpPhone as phone, ulawWav, selfSigned } from "./harness.mjs";

const JSSIP = join(ROOT, "src/console/static/jssip.min.js");
const MIC = join(ROOT, "prompts/please-hold.wav");
// Upper bound on waits for things that happen at once on loopback; never a measure of speed.
const WAIT = 30_000;

const DID = "+15550100";
const config = (carrierPort, mode = "customer_first", host = "127.0.0.1") => ({
  profiles: { carrier: `proxy = "sip:${host}:${carrierPort}"\nregister = false\noptions_ping = "0"\ndids = ["${DID}"]\ninbound_queue = "q"\n` },
  queue: `mode = "${mode}"\nmax_attempts = 1\nring_timeout = "10s"\nagent_ring_timeout = "15s"\nwrap_up = "0s"\n`,
  agents: { alice: "alice-pw" },
});

/** A page served from http://127.0.0.1 (a secure context, so getUserMedia works) with JsSIP. */
async function jssipAgent(browser, origin, wsUrl, agent, password) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(origin);
  await page.addScriptTag({ path: JSSIP });
  await page.evaluate(({ wsUrl, agent, password }) => {
    window.events = [];
    window.calls = [];
    const ua = new JsSIP.UA({ sockets: [new JsSIP.WebSocketInterface(wsUrl)], uri: `sip:${agent}@redial`, password, register: true, session_timers: false });
    ua.on("registered", () => window.events.push("registered"));
    ua.on("newRTCSession", ({ session, request, originator }) => {
      const c = { originator, headers: request ? request.toString() : "", events: [] };
      window.calls.push(c);
      window.session = session;
      for (const e of ["accepted", "confirmed", "failed", "ended"]) session.on(e, (ev) => c.events.push({ e, cause: ev && ev.cause }));
      session.on("peerconnection", ({ peerconnection }) => {
        // Chrome computes audio energy only for a track that is played out.
        peerconnection.addEventListener("track", (ev) => {
          const a = document.createElement("audio");
          a.srcObject = ev.streams[0] || new MediaStream([ev.track]);
          document.body.append(a);
          a.play();
        });
      });
    });
    ua.start();
    window.ua = ua;
  }, { wsUrl, agent, password });
  await until("JsSIP registered", () => page.evaluate(() => window.events.includes("registered")));
  return page;
}

/** The browser's inbound audio as getStats() reports it. */
const inbound = (page) => page.evaluate(async () => {
  const pc = window.session && window.session.connection;
  if (!pc) return null;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === "inbound-rtp" && s.kind === "audio") return { packets: s.packetsReceived, bytes: s.bytesReceived, energy: s.totalAudioEnergy, lost: s.packetsLost };
  }
  return null;
});

/** Audio packets the browser has sent, as getStats() reports them. */
const outbound = (page) => page.evaluate(async () => {
  for (const s of (await window.session.connection.getStats()).values()) {
    if (s.type === "outbound-rtp" && s.kind === "audio") return s.packetsSent;
  }
  return 0;
});

let browser;
let web;
before(async () => {
  browser = await launch([
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${MIC}`,
    // Host candidates on 127.0.0.1, so every packet stays on loopback.
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    // The wss test's certificate is self-signed.
    "--ignore-certificate-errors",
  ]);
  web = createServer((_, res) => res.end("<!doctype html><title>browser agent</title><p>agent</p>"));
  await new Promise((ok) => web.listen(0, "127.0.0.1", ok));
});
after(async () => {
  await browser?.close();
  web?.close();
});

/** Waits until audio flows both ways: the browser hears the phone, the phone hears the browser. */
async function audioBothWays(page, phone, srv) {
  // Counted from the bridge on: before it the phone may hear redial's own prompts.
  await until("the bridge", () => /customer and agent bridged/.test(srv.log()), WAIT);
  const before = phone.stats.loud;
  let got = null;
  const end = Date.now() + WAIT;
  while (!(got && got.packets > 50 && got.energy > 1e-4 && phone.stats.loud - before > 25)) {
    assert.ok(Date.now() < end, `audio both ways: browser ${JSON.stringify(got)}, phone ${JSON.stringify(phone.stats)}\n${srv.log()}`);
    await new Promise((r) => setTimeout(r, 200));
    got = await inbound(page);
  }
  const first = got.bytes;
  await until("the browser's inbound audio bytes rising", async () => (await inbound(page)).bytes > first);
  assert.match(srv.log(), /browser media connected/);
  // The leg's set-up time (answer applied → ICE and DTLS done), for the figures.
  console.log(`# ${(srv.log().match(/setup_ms=\d+/g) || []).join(" ")}`);
  return got;
}

/** The browser's first incoming call, answered; checks the offer was WebRTC. */
async function answer(page) {
  const call = await until("redial's INVITE in the browser", () => page.evaluate(() => window.calls[0]), WAIT);
  assert.equal(call.originator, "remote");
  assert.match(call.headers, /m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0 8 111 101/, "a WebRTC offer: PCMU, PCMA, Opus, telephone-event");
  assert.match(call.headers, /a=ice-lite/);
  await page.evaluate(() => window.session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } }));
  return call;
}

/** The callback's final state, once it has one. */
const finalOf = (srv, id) => until("the callback's end", async () => {
  const c = (await srv.api("GET", `/v1/callbacks/${id}`)).body;
  return ["completed", "failed", "exhausted"].includes(c.status) && c;
});

/** A customer-facing call to a browser agent: phone, carrier, redial, JsSIP page. */
async function dialSetup(mode, { secure = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "redial-webrtc-call-"));
  const customer = await phone(join(dir, "customer.rtp"), ulawWav(join(ROOT, "test-media/amd/h001.wav")));
  const carrier = await sippUas("dial_carrier_answer.xml", { timeoutS: 50, vars: { dir, rtp_port: customer.port } });
  const tls = secure ? await selfSigned(dir) : null;
  const srv = await startRedialWs({ ...config(carrier.port, mode), tls });
  const page = await jssipAgent(browser, `http://127.0.0.1:${web.address().port}/`, secure ? srv.wss : srv.ws, "alice", "alice-pw");
  const close = async () => {
    customer.close();
    carrier.kill();
    await page.context().close().catch(() => {});
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { customer, carrier, srv, page, close };
}

/** A call to the browser agent in `mode`, answered, with audio flowing both ways. */
async function bridgedCall(mode, phone, { secure = false, notes } = {}) {
  const ctx = await dialSetup(mode, { secure });
  try {
    const cb = await ctx.srv.api("POST", "/v1/callbacks", { phone, queue: "q", ...(notes ? { notes } : {}) });
    assert.equal(cb.status, 201, JSON.stringify(cb.body));
    const call = await answer(ctx.page);
    const got = await audioBothWays(ctx.page, ctx.customer, ctx.srv);
    return { ...ctx, id: cb.body.id, call, got };
  } catch (e) {
    await ctx.close();
    throw e;
  }
}

/** The browser hangs up: the carrier gets redial's BYE and the callback ends `completed`; its attempts. */
async function hangUpCompleted({ page, carrier, srv, id }) {
  await page.evaluate(() => window.session.terminate());
  const done = await carrier.done;
  assert.equal(done.code, 0, `the carrier got redial's BYE: ${done.out}`);
  const final = await finalOf(srv, id);
  assert.equal(final.status, "completed", JSON.stringify(final));
  const a = (await srv.api("GET", `/v1/callbacks/${id}/attempts`)).body.items;
  assert.equal(a[0].agent, "alice");
  return a;
}

/**
 * Waits until `count()` has risen by `n` (packets the far end sent meanwhile), then
 * returns how much `heard()` rose over a second stretch of the same length: the first
 * stretch lets packets already on their way land, the second is the one that counts.
 */
async function heardWhile(what, count, n, heard) {
  const stretch = async () => {
    const from = await count();
    await until(what, async () => (await count()) - from >= n, WAIT);
  };
  await stretch();
  const before = await heard();
  await stretch();
  return (await heard()) - before;
}

/**
 * The agent holds (JsSIP `hold()`: a re-INVITE with `a=sendonly`): redial answers
 * `recvonly` keeping the DTLS association, and neither side hears the other while the
 * phone and the browser both go on sending; `unhold()` brings audio back both ways.
 */
async function holdAndResume(page, phone, srv) {
  await page.evaluate(() => new Promise((ok, fail) => {
    if (!window.session.hold({}, ok)) fail(new Error("JsSIP would not hold"));
  }));
  const held = await page.evaluate(() => window.session.connection.remoteDescription.sdp);
  assert.match(held, /^a=recvonly\r?$/m, `redial's answer mirrors sendonly: ${held}`);
  assert.match(held, /^a=setup:passive\r?$/m, "the DTLS role of the association (the browser is active)");
  assert.ok(await page.evaluate(() => window.session.isOnHold().local));
  await until("redial pausing the bridge", () => /bridge paused: the leg is on hold/.test(srv.log()), WAIT);
  const toPhone = await heardWhile("the browser sending while held", () => outbound(page), 50, () => phone.stats.received);
  assert.equal(toPhone, 0, "the customer gets nothing from the held agent");
  const toBrowser = await heardWhile("the customer's phone sending", () => phone.stats.sent, 50, async () => (await inbound(page)).packets);
  assert.equal(toBrowser, 0, "the held browser gets nothing");

  await page.evaluate(() => new Promise((ok, fail) => {
    if (!window.session.unhold({}, ok)) fail(new Error("JsSIP would not resume"));
  }));
  const resumed = await page.evaluate(() => window.session.connection.remoteDescription.sdp);
  assert.match(resumed, /^a=sendrecv\r?$/m, resumed);
  await until("redial resuming the bridge", () => /bridge resumed: the leg is off hold/.test(srv.log()), WAIT);
  // The phone's clip may be over by now (it sends silence after it): say it again.
  phone.replay();
  const loud = phone.stats.loud;
  const before = await inbound(page);
  let now = before;
  const end = Date.now() + WAIT;
  while (!(now.packets - before.packets > 50 && now.energy > before.energy && phone.stats.loud - loud > 25)) {
    assert.ok(Date.now() < end, `audio both ways after the resume: browser ${JSON.stringify(before)} → ${JSON.stringify(now)}, phone loud ${loud} → ${phone.stats.loud}`);
    await new Promise((r) => setTimeout(r, 200));
    now = await inbound(page);
  }
  assert.doesNotMatch(srv.log(), /browser media failed/, "no new handshake, no failure");
}

test("customer-first: the browser agent answers, audio flows both ways, its keypad reaches the customer, and it holds and resumes", async () => {
  const c = await bridgedCall("customer_first", "+15551230001", { notes: "browser call" });
  try {
    assert.match(c.call.headers, new RegExp(`X-Redial-Callback-Id: ${c.id}`));
    console.log(`# customer-first: browser inbound ${JSON.stringify(c.got)}; customer phone ${JSON.stringify({ ...c.customer.stats, events: c.customer.stats.events.length })}`);

    // Key 7 on the browser's keypad as RFC 4733 (RTCDTMFSender): relayed to the carrier leg.
    await c.page.evaluate(() => window.session.sendDTMF("7", { transportType: "RFC2833", duration: 160 }));
    await until("the key at the customer's phone", () => c.customer.stats.events.some((e) => e.event === 7 && e.end));

    await holdAndResume(c.page, c.customer, c.srv);

    const a = await hangUpCompleted(c);
    assert.equal(a[0].amd, "human");
    assert.ok(a[0].timeline.bridged_at, JSON.stringify(a[0]));
  } finally {
    await c.close();
  }
});

test("agent-first: the browser answers first, then the customer, and audio flows both ways", async () => {
  const c = await bridgedCall("agent_first", "+15551230002");
  try {
    const a = await hangUpCompleted(c);
    assert.ok(a[0].timeline.agent_answered_at && a[0].timeline.bridged_at, JSON.stringify(a[0]));
  } finally {
    await c.close();
  }
});

test("the browser's WebSocket closing mid-call hangs up the customer at once", async () => {
  const { carrier, srv, page, close, id } = await bridgedCall("customer_first", "+15551230003");
  try {
    // The tab goes without a BYE (a crash, a lost network): only the connection's close tells redial.
    await page.evaluate(() => { window.session.terminate = () => {}; window.ua.stop = () => {}; });
    await page.context().close();
    // Well before the media timeout (60 s) or ICE consent (30 s) could end it.
    const done = await Promise.race([carrier.done, new Promise((r) => setTimeout(() => r(null), 10_000))]);
    assert.ok(done, `the customer was not hung up within 10 s of the close\n${srv.log()}`);
    assert.equal(done.code, 0, `the carrier got redial's BYE: ${done.out}`);
    assert.match(srv.log(), /WebSocket closed: leg ended/);
    const final = await finalOf(srv, id);
    const a = (await srv.api("GET", `/v1/callbacks/${id}/attempts`)).body.items;
    assert.equal(a.length, 1, JSON.stringify(a));
    assert.equal(a[0].agent, "alice");
    assert.ok(a[0].timeline.bridged_at && a[0].ended_at, JSON.stringify(a[0]));
    assert.equal(final.status, "completed", JSON.stringify(final));
  } finally {
    await close();
  }
});

test("inbound: a caller reaches the browser agent and audio flows both ways", async () => {
  const dir = mkdtempSync(join(tmpdir(), "redial-webrtc-in-"));
  const caller = await phone(join(dir, "caller.rtp"), ulawWav(join(ROOT, "test-media/amd/h008.wav")));
  // The carrier's address: inbound calls are recognised by it.
  const srv = await startRedialWs(config(9, "customer_first", "127.0.0.2"));
  const page = await jssipAgent(browser, `http://127.0.0.1:${web.address().port}/`, srv.ws, "alice", "alice-pw");
  try {
    const ended = sippUac("inbound_caller.xml", srv.sip, [], { ip: "127.0.0.2", timeoutS: 50, vars: { dir, rtp_port: caller.port, did: DID, caller: "+15551230009" } });
    const call = await answer(page);
    assert.match(call.headers, /X-Redial-Queue: q/);
    await audioBothWays(page, caller, srv);
    await page.evaluate(() => window.session.terminate());
    const done = await ended;
    assert.equal(done.code, 0, `the caller got redial's BYE: ${done.out}`);
  } finally {
    caller.close();
    await page.context().close().catch(() => {});
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("over wss (sip.wss_listen with [tls]): the browser agent registers and takes an agent-first call", async () => {
  const c = await bridgedCall("agent_first", "+15551230004", { secure: true });
  try {
    assert.match(c.srv.wss, /^wss:\/\/127\.0\.0\.1:\d+\/$/);
    const regs = (await c.srv.api("GET", "/v1/agents")).body.items.find((a) => a.id === "alice").registrations;
    assert.equal(regs.length, 1, JSON.stringify(regs));
    await hangUpCompleted(c);
  } finally {
    await c.close();
  }
});
