// A browser agent carrying a real call: the redial binary, a SIPp carrier whose
// customer media is an RTP phone in this process, and Debian's chromium running the
// vendored JsSIP with a fake microphone. JsSIP registers over WebSocket; a
// customer-first callback falls due; the carrier answers and the phone plays human
// speech (so AMD says human); redial rings the browser with a WebRTC offer; the
// browser answers; audio must flow both ways through redial's bridge: the browser's
// getStats() shows inbound audio with energy, and the phone receives the browser's
// audio with level. The browser hangs up, redial hangs up the carrier, and the
// callback ends `completed`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, launch, startRedialWs, sippUas, until, ulawRms, ulawWav } from "./harness.mjs";

const JSSIP = join(ROOT, "tests/browser/vendor/jssip.min.js");
const MIC = join(ROOT, "prompts/please-hold.wav");
// Upper bound on waits for things that happen at once on loopback; never a measure of speed.
const WAIT = 30_000;

/**
 * The customer's handset: the RTP side of the SIPp carrier. It learns redial's port
 * from the file the scenario writes, then sends a µ-law clip as 20 ms PCMU packets
 * (then silence) and counts what comes back, with its level.
 */
async function phone(portFile, clip) {
  const sock = dgram.createSocket("udp4");
  await new Promise((ok) => sock.bind(0, "127.0.0.1", ok));
  const st = { received: 0, loud: 0, sent: 0 };
  sock.on("message", (m) => {
    if (m.length < 12 || (m[0] >> 6) !== 2) return;
    st.received++;
    const cc = m[0] & 0x0f;
    if (ulawRms(m.subarray(12 + 4 * cc)) > 200 && st.loud++ === 0) {
      // The customer hears the agent and talks again (the clip was AMD's greeting).
      i = 0;
    }
  });
  let i = 0;
  let timer = null;
  const started = (async () => {
    const port = await until("redial's RTP port for the customer", () => existsSync(portFile) && Number(readFileSync(portFile, "utf8").trim()));
    let seq = 1, ts = 0;
    const ssrc = 0x1234abcd;
    timer = setInterval(() => {
      const pkt = Buffer.alloc(12 + 160, 0xff);
      pkt[0] = 0x80; pkt[1] = 0;
      pkt.writeUInt16BE(seq++ & 0xffff, 2);
      pkt.writeUInt32BE(ts >>> 0, 4);
      pkt.writeUInt32BE(ssrc, 8);
      if (i + 160 <= clip.length) clip.copy(pkt, 12, i, i + 160);
      i += 160; ts += 160;
      sock.send(pkt, port, "127.0.0.1");
      st.sent++;
    }, 20);
  })();
  return { port: sock.address().port, stats: st, started, close: () => { clearInterval(timer); sock.close(); } };
}

const config = (carrierPort) => ({
  profiles: { carrier: `proxy = "sip:127.0.0.1:${carrierPort}"\nregister = false\noptions_ping = "0"\n` },
  queue: 'mode = "customer_first"\nmax_attempts = 1\nring_timeout = "10s"\nagent_ring_timeout = "15s"\nwrap_up = "0s"\n',
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

let browser;
let web;
before(async () => {
  browser = await launch([
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${MIC}`,
    // Host candidates on 127.0.0.1, so every packet stays on loopback.
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
  ]);
  web = createServer((_, res) => res.end("<!doctype html><title>browser agent</title><p>agent</p>"));
  await new Promise((ok) => web.listen(0, "127.0.0.1", ok));
});
after(async () => {
  await browser?.close();
  web?.close();
});

test("customer-first: the browser agent answers and audio flows both ways through the bridge", async () => {
  const dir = mkdtempSync(join(tmpdir(), "redial-webrtc-call-"));
  const customer = await phone(join(dir, "customer.rtp"), ulawWav(join(ROOT, "test-media/amd/h001.wav")));
  const carrier = await sippUas("dial_carrier_answer.xml", { timeoutS: 50, vars: { dir, rtp_port: customer.port } });
  const cfg = config(carrier.port);
  const srv = await startRedialWs({ profiles: cfg.profiles, queue: cfg.queue, agents: { alice: "alice-pw" } });
  try {
    const page = await jssipAgent(browser, `http://127.0.0.1:${web.address().port}/`, srv.ws, "alice", "alice-pw");
    const cb = await srv.api("POST", "/v1/callbacks", { phone: "+15551230001", queue: "q", notes: "browser call" });
    assert.equal(cb.status, 201, JSON.stringify(cb.body));

    const call = await until("redial's INVITE in the browser", () => page.evaluate(() => window.calls[0]), WAIT);
    assert.equal(call.originator, "remote");
    assert.match(call.headers, new RegExp(`X-Redial-Callback-Id: ${cb.body.id}`));
    assert.match(call.headers, /m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0 8 101/, "a WebRTC offer: PCMU, PCMA, telephone-event");
    assert.match(call.headers, /a=ice-lite/);
    await page.evaluate(() => window.session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } }));

    let got = null;
    const end = Date.now() + WAIT;
    while (!(got && got.packets > 50 && got.energy > 1e-4 && customer.stats.loud > 25)) {
      assert.ok(Date.now() < end, `audio both ways: browser ${JSON.stringify(got)}, customer ${JSON.stringify(customer.stats)}\n${srv.log()}`);
      await new Promise((r) => setTimeout(r, 200));
      got = await inbound(page);
    }
    const first = got.bytes;
    await until("the browser's inbound audio bytes rising", async () => (await inbound(page)).bytes > first);
    console.log(`# browser inbound: ${JSON.stringify(got)}; customer phone: ${JSON.stringify(customer.stats)}`);

    await page.evaluate(() => window.session.terminate());
    const done = await carrier.done;
    assert.equal(done.code, 0, `the carrier got redial's BYE: ${done.out}`);
    const final = await until("the callback completed", async () => {
      const c = (await srv.api("GET", `/v1/callbacks/${cb.body.id}`)).body;
      return ["completed", "failed", "exhausted"].includes(c.status) && c;
    });
    assert.equal(final.status, "completed", JSON.stringify(final));
    const a = (await srv.api("GET", `/v1/callbacks/${cb.body.id}/attempts`)).body.items;
    assert.equal(a[0].agent, "alice");
    assert.ok(a[0].timeline.bridged_at, JSON.stringify(a[0]));
    assert.match(srv.log(), /browser media connected/);
    await page.context().close();
  } finally {
    customer.close();
    carrier.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
