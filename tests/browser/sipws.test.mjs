// SIP over WebSocket (RFC 7118) against a bare JsSIP page in Debian's chromium:
// the SIP contract tested apart from redial's own agent workspace. A JsSIP user
// agent registers as agent `alice` with digest credentials; redial's own dialler
// calls it (agent-first callback) down the same connection and it rings; closing
// the page ends the registration at once; a WebSocket that does not offer the
// `sip` subprotocol is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, launch, startRedialWs, until } from "./harness.mjs";

const JSSIP = join(ROOT, "src/console/static/jssip.min.js");

// The carrier is never reached: in agent-first mode the agent is rung first.
const startRedial = () => startRedialWs({
  profiles: { carrier: 'proxy = "sip:127.0.0.1:9"\nregister = false\noptions_ping = "0"\n' },
  agents: { alice: "alice-pw" },
  queue: 'mode = "agent_first"\nmax_attempts = 1\nagent_ring_timeout = "4s"\nwrap_up = "0s"\n',
});

/** A blank page with JsSIP loaded and a user agent for `agent` that records its events. */
async function jssipPage(browser, wsUrl, agent, password) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.setContent("<!doctype html><title>bare JsSIP</title><p>bare JsSIP</p>");
  await page.addScriptTag({ path: JSSIP });
  await page.evaluate(({ wsUrl, agent, password }) => {
    window.events = [];
    window.sessions = [];
    const socket = new JsSIP.WebSocketInterface(wsUrl);
    const ua = new JsSIP.UA({ sockets: [socket], uri: `sip:${agent}@redial`, password, register: true, session_timers: false });
    for (const e of ["connected", "disconnected", "registered", "unregistered", "registrationFailed"]) {
      ua.on(e, (ev) => window.events.push({ e, cause: ev && ev.cause }));
    }
    ua.on("newRTCSession", ({ session, request, originator }) => {
      const s = { originator, headers: request ? request.toString() : "", events: [] };
      window.sessions.push(s);
      for (const e of ["progress", "failed", "ended", "accepted"]) {
        session.on(e, (ev) => s.events.push({ e, originator: ev.originator, cause: ev.cause }));
      }
    });
    ua.start();
    window.ua = ua;
  }, { wsUrl, agent, password });
  return page;
}

const events = (page) => page.evaluate(() => window.events.map((x) => x.e));

let srv;
let browser;
before(async () => {
  srv = await startRedial();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

const registrations = async (id) => (await srv.api("GET", "/v1/agents")).body.items.find((a) => a.id === id).registrations;

test("a bare JsSIP page registers over WebSocket with digest and is rung down its connection", async () => {
  const page = await jssipPage(browser, srv.ws, "alice", "alice-pw");
  await until("JsSIP registered", async () => (await events(page)).includes("registered"));
  const regs = await registrations("alice");
  assert.equal(regs.length, 1, JSON.stringify(regs));
  assert.match(regs[0].contact, /\.invalid;transport=ws/i, "JsSIP's contact host is a .invalid name, reachable only through its connection");

  // redial rings the agent first (agent-first callback): the INVITE must come down
  // the WebSocket, JsSIP answers 180 and redial records the agent ringing.
  const cb = await srv.api("POST", "/v1/callbacks", { phone: "+15551230001", queue: "q", notes: "ws test" });
  assert.equal(cb.status, 201, JSON.stringify(cb.body));
  const s = await until("an incoming call in JsSIP", () => page.evaluate(() => window.sessions[0]));
  assert.equal(s.originator, "remote");
  assert.match(s.headers, new RegExp(`X-Redial-Attempt: ${cb.body.id}/1`));
  assert.match(s.headers, /^Via: SIP\/2\.0\/WS /m, "redial's Via names the WebSocket transport");
  await until("the agent ringing in the attempt", async () => {
    const a = (await srv.api("GET", `/v1/callbacks/${cb.body.id}/attempts`)).body.items;
    return a.length === 1 && a[0].agent === "alice" && a[0].timeline && a[0].timeline.agent_ringing_at;
  });
  // Unanswered, the ring times out: redial's CANCEL reaches the browser the same way.
  const ended = await until("the call cancelled", () => page.evaluate(() => window.sessions[0].events.find((e) => e.e === "failed")));
  assert.equal(ended.originator, "remote");
  assert.equal(ended.cause, "Canceled");
  await page.context().close();
});

test("closing the page ends the registration at once", async () => {
  const page = await jssipPage(browser, srv.ws, "alice", "alice-pw");
  await until("JsSIP registered", async () => (await events(page)).includes("registered"));
  await until("alice registered", async () => (await registrations("alice")).length > 0);
  // The page goes without unregistering (a crashed tab, a lost network): only the
  // connection's close tells redial.
  await page.evaluate(() => { window.ua.stop = () => {}; });
  await page.context().close();
  // Well before the 600 s the binding was granted for.
  await until("alice unregistered", async () => (await registrations("alice")).length === 0, 10_000);
  const agents = (await srv.api("GET", "/v1/agents")).body.items;
  assert.equal(agents.find((a) => a.id === "alice").state, "offline", JSON.stringify(agents));
});

test("a WebSocket without the sip subprotocol is refused", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.setContent("<!doctype html><title>plain ws</title>");
  const outcome = await page.evaluate((url) => new Promise((done) => {
    const ws = new WebSocket(url, "chat");
    ws.onopen = () => done("open");
    ws.onclose = (e) => done(`closed ${e.code}`);
  }), srv.ws);
  assert.equal(outcome, "closed 1006", "the handshake fails, the socket never opens");
  const ok = await page.evaluate((url) => new Promise((done) => {
    const ws = new WebSocket(url, "sip");
    ws.onopen = () => { done(ws.protocol); ws.close(); };
    ws.onclose = (e) => done(`closed ${e.code}`);
  }), srv.ws);
  assert.equal(ok, "sip");
  await ctx.close();
});
