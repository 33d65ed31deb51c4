// The WebRTC leg (src/webrtc/) against Debian's chromium: ICE-lite, DTLS-SRTP and
// G.711 with a real browser. `examples/webrtc_leg_peer` holds one leg on a loopback
// UDP socket and prints its offer; the page answers with a fake microphone playing a
// prompt WAV; audio must flow both ways (the page's getStats() shows inbound audio
// with energy; the leg counts the browser's frames and their level).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createServer } from "node:http";
import { chromium } from "playwright-core";
import { ROOT } from "./harness.mjs";

const WAV = join(ROOT, "prompts/please-hold.wav");
// Upper bound on waits; never a measure of speed.
const WAIT = 30_000;

test("chromium connects to an ICE-lite leg and G.711 flows both ways", async () => {
  const bin = process.env.WEBRTC_PEER_BIN || join(ROOT, "target/debug/examples/webrtc_leg_peer");
  if (!existsSync(bin)) throw new Error(`no ${bin}: run cargo build --examples first`);
  const peer = spawn(bin, ["5"], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: peer.stdout })[Symbol.asyncIterator]();
  const nextLine = async () => {
    let timer;
    const silent = new Promise((_, no) => { timer = setTimeout(() => no(new Error("peer silent")), WAIT); });
    try {
      const r = await Promise.race([lines.next(), silent]);
      assert.ok(!r.done, "peer exited early");
      return JSON.parse(r.value);
    } finally {
      clearTimeout(timer);
    }
  };
  const server = createServer((_, res) => res.end("<!doctype html><title>webrtc leg</title>"));
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync",
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${WAV}`,
      // Host candidates on 127.0.0.1, so every packet stays on loopback.
      "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    ],
  });
  try {
    const { offer } = await nextLine();
    assert.match(offer, /a=ice-lite/);
    const page = await (await browser.newContext()).newPage();
    // getUserMedia needs a secure context: http://127.0.0.1 is one, about:blank is not.
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    const answer = await page.evaluate(async (offer) => {
      const pc = new RTCPeerConnection();
      window.pc = pc;
      // Chrome computes audio energy for a track that is played out.
      pc.ontrack = (e) => {
        const a = document.createElement("audio");
        a.srcObject = e.streams[0] || new MediaStream([e.track]);
        document.body.append(a);
        a.play();
      };
      const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      for (const t of mic.getTracks()) pc.addTrack(t, mic);
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      await pc.setLocalDescription(await pc.createAnswer());
      return pc.localDescription.sdp;
    }, offer);
    assert.match(answer, /a=setup:active/, "Chrome answers actpass with active: the leg is the DTLS server");
    assert.match(answer, /m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0\b/, "PCMU, offered first, is what Chrome picks");
    peer.stdin.write(JSON.stringify({ answer }) + "\n");

    await page.waitForFunction(() => window.pc.connectionState === "connected", null, { timeout: WAIT });
    // Inbound audio with energy, as getStats() reports it (polled: the condition is async).
    const inboundAudio = () => page.evaluate(async () => {
      for (const s of (await window.pc.getStats()).values()) {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          return { packets: s.packetsReceived, energy: s.totalAudioEnergy, lost: s.packetsLost, level: s.audioLevel };
        }
      }
      return null;
    });
    let got = null;
    const end = Date.now() + WAIT;
    while (!(got && got.packets > 40 && got.energy > 0)) {
      assert.ok(Date.now() < end, `no inbound audio with energy: ${JSON.stringify(got)}`);
      await new Promise((r) => setTimeout(r, 200));
      got = await inboundAudio();
    }
    const result = await nextLine();
    assert.equal(result.error, undefined, JSON.stringify(result));
    console.log(`# browser: ${JSON.stringify(got)}; leg: ${JSON.stringify(result)}`);
    assert.ok(result.frames_in > 40, `the leg got ${result.frames_in} frames from the browser`);
    assert.ok(result.rms_in > 100, `the browser's audio reached the leg with level (rms ${result.rms_in})`);
    assert.ok(result.frames_out > 40);
  } finally {
    await browser.close();
    server.close();
    if (peer.exitCode === null) peer.kill();
  }
});
