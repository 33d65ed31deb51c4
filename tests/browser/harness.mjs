// Starts the real redial binary on loopback ports chosen by the kernel
// (port 0; the bound addresses are read from its ready file) with a
// throw-away config and book, SIPp peers on loopback, and Debian's chromium
// through playwright-core.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");

// The configuration is the Rust API tests' own (tests/common/api.rs reads
// the same two files), so both suites run redial the same way.
const COMMON = join(ROOT, "tests/common");
const TOKENS = readFileSync(join(COMMON, "api-test-tokens.toml"), "utf8");
/** The secret of the token named `name` in the shared tokens file. */
function secret(name) {
  const m = TOKENS.match(new RegExp(`name = "${name}"\\s*\\nsecret = "([^"]+)"`));
  if (!m) throw new Error(`no token ${name} in api-test-tokens.toml`);
  return m[1];
}
export const ADMIN = secret("admin");
export const RW = secret("crm");
export const RO = secret("viewer");

function config(dir, extra) {
  return readFileSync(join(COMMON, "api-test.toml"), "utf8")
    .replace("@STORAGE@", join(dir, "data/redial.redb"))
    .replace("@PROFILES@", join(dir, "sip-profiles"))
    .replace("@TOKENS@", TOKENS) + "\n" + extra;
}

/**
 * Starts `redial serve` on the shared test configuration plus `extra` TOML,
 * with `profiles` ({name: toml}) in its profiles directory; resolves once
 * its ready file names the bound HTTP and SIP addresses.
 */
export async function startServer({ extra = "", profiles = {} } = {}) {
  const bin = process.env.REDIAL_BIN || join(ROOT, "target/debug/redial");
  if (!existsSync(bin)) throw new Error(`no redial binary at ${bin}: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), "redial-browser-"));
  mkdirSync(join(dir, "sip-profiles"), { recursive: true });
  for (const [name, body] of Object.entries(profiles)) writeFileSync(join(dir, "sip-profiles", `${name}.toml`), body);
  writeFileSync(join(dir, "redial.toml"), config(dir, extra));
  const ready = join(dir, "ready.json");
  const child = spawn(bin, ["serve", "--config", join(dir, "redial.toml"), "--ready-file", ready], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: "warn,redial::api=info", NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (b) => { log += b.toString(); });
  let exited = null;
  child.once("exit", (code) => { exited = code; });
  const deadline = Date.now() + 60_000;
  let bound = null;
  while (!bound) {
    if (existsSync(ready)) {
      try { bound = JSON.parse(readFileSync(ready, "utf8")); } catch { /* being written */ }
    }
    if (!bound) {
      if (exited !== null) throw new Error(`redial exited (${exited}) before it was ready:\n${log}`);
      if (Date.now() > deadline) { child.kill("SIGKILL"); throw new Error("redial was not ready in 60 s:\n" + log); }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const base = `http://${bound.http}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { base, sip: bound.sip, stop, api: api(base), log: () => log };
}

/** A tiny REST client with a bearer token. */
function api(base) {
  return async function call(method, path, body, token = ADMIN) {
    const r = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

/** Debian's chromium, headless; `extra` flags added (fake media for WebRTC tests). */
export async function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync",
      ...extra,
    ],
  });
}

/** Polls `fn` until it returns a truthy value (`ms` is an upper bound, never a measure of speed). */
export async function until(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts `redial serve` for browser agents: SIP on UDP and WebSocket (`ws_listen`),
 * one queue `q` on profile `carrier` (`queue` adds its keys), `agents` ({id: password})
 * in it, `profiles` ({name: toml}). Resolves once the ready file names the listeners:
 * { ws, sip, base, api, stop, log }.
 */
export async function startRedialWs({ profiles = {}, queue = "", agents = {}, extra = "", dir: keep, wsPort = 0, tls = null } = {}) {
  const bin = process.env.REDIAL_BIN || join(ROOT, "target/debug/redial");
  if (!existsSync(bin)) throw new Error(`no redial binary at ${bin}: run cargo build first`);
  const dir = keep || mkdtempSync(join(tmpdir(), "redial-ws-"));
  mkdirSync(join(dir, "sip-profiles"), { recursive: true });
  for (const [name, body] of Object.entries(profiles)) writeFileSync(join(dir, "sip-profiles", `${name}.toml`), body);
  const agentToml = Object.entries(agents).map(([id, pw]) => `[[agents]]\nid = "${id}"\npassword = "${pw}"\nqueues = ["q"]\n`).join("\n");
  writeFileSync(join(dir, "redial.toml"), `
[sip]
listen = "127.0.0.1:0"
ws_listen = "127.0.0.1:${wsPort}"
${tls ? 'wss_listen = "127.0.0.1:0"' : ""}
${tls ? `[tls]\ncert = "${tls.cert}"\nkey = "${tls.key}"\n` : ""}

[http]
listen = "127.0.0.1:0"

[storage]
path = "${join(dir, "data/redial.redb")}"

[profiles]
dir = "${join(dir, "sip-profiles")}"

[[tokens]]
name = "admin"
secret = "${ADMIN}"
scopes = ["admin"]

${agentToml}
[[queues]]
name = "q"
profile = "carrier"
timezone = "UTC"
hours = ["mon-sun 00:00-24:00"]
${queue}
${extra}`);
  const ready = join(dir, "ready.json");
  rmSync(ready, { force: true });
  const child = spawn(bin, ["serve", "--config", join(dir, "redial.toml"), "--ready-file", ready], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: process.env.REDIAL_LOG || "warn,redial::sip::transport=info,redial::sip::calls=info,redial::media=info,redial::webrtc=info,redial::dialler=info,redial::inbound=info", NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (b) => { log += b.toString(); });
  let exited = null;
  child.once("exit", (code) => { exited = code; });
  const bound = await until("the ready file", () => {
    if (exited !== null) throw new Error(`redial exited (${exited}):\n${log}`);
    if (!existsSync(ready)) return null;
    try { return JSON.parse(readFileSync(ready, "utf8")); } catch { return null; }
  }, 60_000);
  const base = `http://${bound.http}`;
  const stop = async ({ keepDir = false } = {}) => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await done;
    }
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  };
  return { ws: `ws://${bound.ws}/`, wss: bound.wss && `wss://${bound.wss}/`, sip: bound.sip, base, dir, api: api(base), stop, log: () => log };
}

/** The µ-law samples of a µ-law WAV (the AMD corpus format). */
export function ulawWav(path) {
  const b = readFileSync(path);
  let i = 12;
  while (i + 8 <= b.length) {
    const len = b.readUInt32LE(i + 4);
    if (b.toString("latin1", i, i + 4) === "data") return b.subarray(i + 8, Math.min(i + 8 + len, b.length));
    i += 8 + len + (len & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

/** G.711 µ-law to linear (ITU-T G.711). */
function ulaw(u) {
  u = ~u & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** RMS level of a µ-law payload (of 32,767). */
export function ulawRms(payload) {
  if (payload.length === 0) return 0;
  let sum = 0;
  for (const u of payload) { const x = ulaw(u); sum += x * x; }
  return Math.sqrt(sum / payload.length);
}

/** Signs in through the login page; returns the page. */
export async function signIn(browser, base, creds) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await ctx.newPage();
  await page.goto(base + "/");
  if (creds.token) {
    await page.getByTestId("login-token").fill(creds.token);
  } else {
    await page.getByTestId("login-agent-id").fill(creds.agent);
    await page.getByTestId("login-password").fill(creds.password);
  }
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.getByTestId("login-submit").click()]);
  return page;
}

/** A UDP port free a moment ago (the kernel's choice for port 0). */
async function freePort() {
  const s = dgram.createSocket("udp4");
  await new Promise((ok, fail) => { s.once("error", fail); s.bind(0, "127.0.0.1", ok); });
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Whether some process holds UDP `port` on loopback. */
async function udpTaken(port) {
  const s = dgram.createSocket("udp4");
  return new Promise((ok) => {
    s.once("error", (e) => ok(e.code === "EADDRINUSE"));
    s.bind(port, "127.0.0.1", () => s.close(() => ok(false)));
  });
}

/**
 * Starts SIPp with `scenario` from tests/sipp as a UAS (`-p` must be told,
 * so a port free a moment ago is taken, and another if SIPp loses it) and
 * resolves once it holds its port: { port, done } where `done` resolves to
 * { code, stdout } when it exits (it ends after `calls` calls or `timeoutS`).
 */
export async function sippUas(scenario, { calls = 1, timeoutS = 60, vars = {} } = {}) {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const r = await sipp(scenario, ["-p", String(port), "-m", String(calls)], { timeoutS, vars });
    const deadline = Date.now() + 20_000;
    while (r.child.exitCode === null && !(await udpTaken(port)) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 10));
    if (r.child.exitCode === null && Date.now() < deadline) return { port, done: r.done, kill: () => r.child.kill("SIGKILL") };
    r.child.kill("SIGKILL");
    await r.done;
  }
  throw new Error(`SIPp ${scenario} could not bind a port`);
}

/** Runs SIPp with `scenario` as a UAC against `remote` to completion (from loopback address `ip`). */
export async function sippUac(scenario, remote, args = [], { timeoutS = 30, vars = {}, ip } = {}) {
  const port = await freePort();
  const r = await sipp(scenario, [remote, "-p", String(port), "-m", "1", ...args], { timeoutS, vars, ip });
  return r.done;
}

async function sipp(scenario, args, { timeoutS, vars, ip = "127.0.0.1" }) {
  const dir = mkdtempSync(join(tmpdir(), "redial-sipp-"));
  // `dir: true` names SIPp's own scratch directory (scenarios that write files take it).
  const sets = Object.entries(vars).flatMap(([k, v]) => ["-set", k, v === true ? dir : String(v)]);
  const child = spawn("sipp", ["-sf", join(ROOT, "tests/sipp", scenario), "-i", ip, ...args, "-timeout", `${timeoutS}s`, "-timeout_error", "-nostdin", "-trace_err", "-error_file", join(dir, "errors.log"), ...sets], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (b) => { out += b.toString(); });
  child.stderr.on("data", (b) => { out += b.toString(); });
  // A hard stop a little after SIPp's own timeout.
  const hard = setTimeout(() => child.kill("SIGKILL"), (timeoutS + 5) * 1000);
  const done = new Promise((ok) => child.once("exit", (code) => {
    clearTimeout(hard);
    let errors = "";
    try { errors = readFileSync(join(dir, "errors.log"), "utf8"); } catch { /* none */ }
    rmSync(dir, { recursive: true, force: true });
    ok({ code, out: out + errors });
  }));
  return { child, done };
}

/**
 * A customer's (or caller's) handset: the RTP side of a SIPp peer. It learns redial's
 * port from the file the scenario writes (`portFile`), then sends a µ-law clip as 20 ms
 * PCMU packets (then silence), and counts what comes back: packets, those with level,
 * and RFC 4733 reports (payload type 101). When it first hears something loud (the
 * agent), it says its clip again. `retarget()` forgets the port and waits for the file
 * again (the next call of the same SIPp peer); `replay()` says the clip again.
 */
export async function rtpPhone(portFile, clip) {
  const sock = dgram.createSocket("udp4");
  await new Promise((ok) => sock.bind(0, "127.0.0.1", ok));
  const st = { received: 0, loud: 0, sent: 0, events: [] };
  let i = 0;
  let heard = false;
  sock.on("message", (m) => {
    if (m.length < 12 || (m[0] >> 6) !== 2) return;
    st.received++;
    const cc = m[0] & 0x0f;
    const payload = m.subarray(12 + 4 * cc);
    if ((m[1] & 0x7f) === 101) {
      st.events.push({ event: payload[0], end: (payload[1] & 0x80) !== 0 });
      return;
    }
    if (ulawRms(payload) > 200) {
      st.loud++;
      if (!heard) { heard = true; i = 0; }
    }
  });
  let timer = null;
  const target = async () => {
    const port = await until("redial's RTP port for the phone", () => existsSync(portFile) && Number(readFileSync(portFile, "utf8").trim()));
    let seq = 1, ts = 0;
    i = 0;
    heard = false;
    clearInterval(timer);
    timer = setInterval(() => {
      const pkt = Buffer.alloc(12 + 160, 0xff);
      pkt[0] = 0x80; pkt[1] = 0;
      pkt.writeUInt16BE(seq++ & 0xffff, 2);
      pkt.writeUInt32BE(ts >>> 0, 4);
      pkt.writeUInt32BE(0x1234abcd, 8);
      if (i + 160 <= clip.length) clip.copy(pkt, 12, i, i + 160);
      i += 160; ts += 160;
      sock.send(pkt, port, "127.0.0.1");
      st.sent++;
    }, 20);
  };
  target();
  return {
    port: sock.address().port,
    stats: st,
    retarget: () => { clearInterval(timer); rmSync(portFile, { force: true }); target(); },
    /** Says the clip again from its start. */
    replay: () => { i = 0; },
    close: () => { clearInterval(timer); sock.close(); },
  };
}

/** A TCP port free a moment ago (for a listener that must keep its port across a restart). */
export async function freeTcpPort() {
  const net = await import("node:net");
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A self-signed certificate for 127.0.0.1 in `dir` (made by `openssl`): { cert, key }. */
export async function selfSigned(dir) {
  const { execFileSync } = await import("node:child_process");
  const cert = join(dir, "cert.pem"), key = join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=redial test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });
  return { cert, key };
}
