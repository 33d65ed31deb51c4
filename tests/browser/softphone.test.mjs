// The softphone in the agent workspace (/agent), in Debian's chromium with a fake
// microphone: the agent signs in and the page's JsSIP registers over WebSocket; a
// customer-first callback to a SIPp carrier rings it with the callback's context; the
// agent answers with the button, audio flows both ways, mute, hold and the keypad work (the
// key reaches the customer as RFC 4733), and hanging up ends the call. Then redial
// restarts: the softphone reconnects and registers again by itself, and with
// auto-answer on it takes the next reserved callback without a click.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, launch, signIn, startRedialWs, sippUas, until, rtpPhone, ulawWav, freeTcpPort } from "./harness.mjs";

const MIC = join(ROOT, "prompts/please-hold.wav");
// Upper bound on waits for things that happen at once on loopback; never a measure of speed.
const WAIT = 30_000;

let browser;
before(async () => {
  browser = await launch([
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${MIC}`,
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
  ]);
});
after(async () => { await browser?.close(); });

const status = (page) => page.getByTestId("softphone-status").textContent();

/** The softphone's inbound audio as getStats() reports it. */
const inbound = (page) => page.evaluate(async () => {
  const pc = window.softphone && window.softphone.session && window.softphone.session.connection;
  if (!pc) return null;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === "inbound-rtp" && s.kind === "audio") return { packets: s.packetsReceived, bytes: s.bytesReceived, energy: s.totalAudioEnergy };
  }
  return null;
});

/** Audio both ways from the bridge on (before it the customer hears redial's prompts). */
async function audioBothWays(page, customer, srv, bridges) {
  await until("the bridge", () => (srv.log().match(/customer and agent bridged/g) || []).length >= bridges, WAIT);
  const before = customer.stats.loud;
  await until("audio both ways", async () => {
    const got = await inbound(page);
    return got && got.packets > 50 && got.energy > 1e-4 && customer.stats.loud - before > 25;
  }, WAIT);
  const first = (await inbound(page)).bytes;
  await until("the softphone's inbound audio bytes rising", async () => (await inbound(page)).bytes > first);
}

test("the workspace softphone registers, rings with the callback, answers, mutes, holds, sends keys, hangs up, and re-registers after a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "redial-softphone-"));
  const customer = await rtpPhone(join(dir, "customer.rtp"), ulawWav(join(ROOT, "test-media/amd/h001.wav")));
  const carrier = await sippUas("dial_carrier_answer.xml", { calls: 2, timeoutS: 90, vars: { dir, rtp_port: customer.port } });
  const wsPort = await freeTcpPort();
  const opts = {
    profiles: { carrier: `proxy = "sip:127.0.0.1:${carrier.port}"\nregister = false\noptions_ping = "0"\n` },
    queue: 'mode = "customer_first"\nmax_attempts = 1\nring_timeout = "10s"\nagent_ring_timeout = "20s"\nwrap_up = "0s"\n',
    agents: { alice: "alice-pw" },
    wsPort,
  };
  let srv = await startRedialWs(opts);
  try {
    const page = await signIn(browser, srv.base, { agent: "alice", password: "alice-pw" });
    assert.match(page.url(), /\/agent$/);
    await until("the softphone registered", async () => (await status(page)) === "registered");
    const regs = (await srv.api("GET", "/v1/agents")).body.items.find((a) => a.id === "alice").registrations;
    assert.equal(regs.length, 1, JSON.stringify(regs));

    // A reserved callback rings the softphone with its context.
    const cb = await srv.api("POST", "/v1/callbacks", { phone: "+15551230001", queue: "q", notes: "wants a refund" });
    assert.equal(cb.status, 201, JSON.stringify(cb.body));
    await until("the softphone ringing", async () => (await status(page)) === "ringing", WAIT);
    const banner = page.getByTestId("softphone-ringing");
    assert.equal(await banner.getAttribute("data-callback-id"), cb.body.id);
    assert.match(await page.getByTestId("softphone-context").textContent(), /wants a refund/);
    assert.ok(await banner.isVisible());

    await page.getByTestId("softphone-answer").click();
    await until("in-call", async () => (await status(page)) === "in-call");
    await audioBothWays(page, customer, srv, 1);

    // Mute: the microphone's track is off; unmute turns it on again.
    await page.getByTestId("softphone-mute").click();
    assert.equal(await page.getByTestId("softphone-mute").getAttribute("aria-pressed"), "true");
    assert.equal(await page.evaluate(() => window.softphone.session.isMuted().audio), true);
    assert.equal(await page.evaluate(() => window.softphone.session.connection.getSenders().every((s) => !s.track || !s.track.enabled)), true);
    await page.getByTestId("softphone-mute").click();
    assert.equal(await page.evaluate(() => window.softphone.session.isMuted().audio), false);

    // Hold: a re-INVITE with a=sendonly, answered recvonly; redial pauses the bridge.
    // Resume brings the customer's audio back (webrtc_call.test.mjs checks the media
    // both ways in detail).
    const hold = page.getByTestId("softphone-hold");
    await hold.click();
    await until("the hold button pressed", async () => (await hold.getAttribute("aria-pressed")) === "true");
    await until("redial's recvonly answer", () => page.evaluate(() => /^a=recvonly\r?$/m.test(window.softphone.session.connection.remoteDescription.sdp)));
    await until("redial pausing the bridge", () => /bridge paused: the leg is on hold/.test(srv.log()), WAIT);
    assert.equal(await status(page), "in-call");
    assert.equal(await page.getByTestId("softphone-detail").textContent(), "on hold");
    assert.equal(await hold.textContent(), "Resume");
    await hold.click();
    await until("the hold button released", async () => (await hold.getAttribute("aria-pressed")) === "false");
    await until("redial resuming the bridge", () => /bridge resumed: the leg is off hold/.test(srv.log()), WAIT);
    const heard = (await inbound(page)).packets;
    await until("the customer heard again", async () => (await inbound(page)).packets > heard + 25, WAIT);

    // The keypad: 3 reaches the customer as an RFC 4733 event through the bridge.
    await page.locator('[data-testid=softphone-dtmf][data-digit="3"]').click();
    await until("key 3 at the customer's phone", () => customer.stats.events.some((e) => e.event === 3 && e.end));

    await page.getByTestId("softphone-hangup").click();
    await until("back to registered", async () => (await status(page)) === "registered");
    const final = await until("the callback completed", async () => {
      const c = (await srv.api("GET", `/v1/callbacks/${cb.body.id}`)).body;
      return c.status !== "scheduled" && c.status !== "in_progress" && c;
    });
    assert.equal(final.status, "completed", JSON.stringify(final));

    // redial restarts (same book, same WebSocket port): the softphone notices the
    // closed connection, reconnects with back-off and registers again by itself.
    await srv.stop({ keepDir: true });
    await until("the softphone unregistered", async () => (await status(page)) === "unregistered");
    srv = await startRedialWs({ ...opts, dir: srv.dir });
    await until("the softphone registered again", async () => (await status(page)) === "registered", WAIT);
    await until("redial has the registration", async () => (await srv.api("GET", "/v1/agents")).body.items.find((a) => a.id === "alice").registrations.length === 1);

    // Auto-answer for reserved callbacks: no click.
    await page.getByTestId("softphone-auto-answer").check();
    customer.retarget();
    const cb2 = await srv.api("POST", "/v1/callbacks", { phone: "+15551230002", queue: "q" });
    assert.equal(cb2.status, 201, JSON.stringify(cb2.body));
    await until("in-call without a click", async () => (await status(page)) === "in-call", WAIT);
    await audioBothWays(page, customer, srv, 1);
    await page.getByTestId("softphone-hangup").click();
    const done = await carrier.done;
    assert.equal(done.code, 0, `the carrier's two calls ended with redial's BYE: ${done.out}`);
    await page.context().close();
  } finally {
    customer.close();
    carrier.kill();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
