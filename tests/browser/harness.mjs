// Starts the real redial binary on loopback ports chosen by the kernel
// (port 0; the bound HTTP address is read from its log) with a throw-away
// config and book, and launches Debian's chromium through playwright-core.
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");
export const ADMIN = "admin-secret-0001";
export const RW = "rw-secret-0001";
export const RO = "ro-secret-0001";

function config(dir) {
  return `
[sip]
listen = "127.0.0.1:0"

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

[[tokens]]
name = "crm"
secret = "${RW}"
scopes = ["callbacks:read", "callbacks:write"]

[[tokens]]
name = "viewer"
secret = "${RO}"
scopes = ["callbacks:read"]

[[agents]]
id = "alice"
password = "alice-pw"
queues = ["support"]

[[agents]]
id = "bob"
password = "bob-pw"
queues = ["sales"]

[[queues]]
name = "support"
timezone = "UTC"
hours = ["mon-sun 00:00-24:00"]

[[queues]]
name = "sales"
timezone = "America/New_York"
hours = ["mon-fri 09:00-17:00"]
`;
}

/** Starts `redial serve`; resolves once its HTTP address is known. */
export async function startServer() {
  const bin = process.env.REDIAL_BIN || join(ROOT, "target/debug/redial");
  if (!existsSync(bin)) throw new Error(`no redial binary at ${bin}: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), "redial-browser-"));
  mkdirSync(join(dir, "sip-profiles"), { recursive: true });
  writeFileSync(join(dir, "redial.toml"), config(dir));
  const child = spawn(bin, ["serve", "--config", join(dir, "redial.toml")], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: "warn,redial::api=info", NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("redial did not report its HTTP address in 60 s:\n" + log)), 60_000);
    child.stderr.on("data", (b) => {
      log += b.toString();
      const m = log.match(/HTTP API listening addr=(127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); ok(`http://${m[1]}`); }
    });
    child.on("exit", (code) => { clearTimeout(timer); fail(new Error(`redial exited (${code}) before listening:\n${log}`)); });
  });
  child.removeAllListeners("exit");
  const stop = async () => {
    if (child.exitCode === null) {
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { base, stop, api: api(base) };
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

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync",
    ],
  });
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
