// Browser tests of the console and the agent workspace against the real
// binary. Run: `npm test` here (after `cargo build`), or ./scripts/test.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { startServer, launch, signIn, sippUas, sippUac, RO } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

let srv, browser;
let n = 0;
/** A fresh E.164 number per callback, so no two collide in a queue. */
const phone = () => `+1555010${String(1000 + n++).padStart(4, "0")}`;
const inHours = (h) => new Date(Date.now() + h * 3600_000).toISOString();

async function newCallback(extra = {}) {
  const r = await srv.api("POST", "/v1/callbacks", { phone: phone(), queue: "support", scheduled_at: inHours(2), notes: "billing question", ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** Clicks and waits for the page it leads to. */
const go = (page, locator) => Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
const row = (page, id) => page.locator(`[data-testid=callback-row][data-callback-id="${id}"]`);

before(async () => {
  srv = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test("a wrong login is refused without saying which part was wrong", async () => {
  for (const creds of [{ token: "not-a-token" }, { agent: "alice", password: "wrong" }, { agent: "nobody", password: "alice-pw" }]) {
    const page = await signIn(browser, srv.base, creds);
    await page.getByTestId("login-error").waitFor();
    assert.match(await page.getByTestId("login-error").textContent(), /not valid/);
    assert.ok(new URL(page.url()).pathname === "/login");
    await page.context().close();
  }
  const r = await fetch(srv.base + "/console", { redirect: "manual" });
  assert.equal(r.status, 303);
  assert.equal(r.headers.get("location"), "/login");
});

test("pages carry the security headers and the session cookie is HttpOnly and SameSite=Strict", async () => {
  const r = await fetch(srv.base + "/login", { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `token=${encodeURIComponent(RO)}` });
  assert.equal(r.status, 303);
  const cookie = r.headers.get("set-cookie");
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const page = await fetch(srv.base + "/console", { headers: { cookie: cookie.split(";")[0] } });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  const csp = page.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
});

test("supervisor: tabs and filters", async () => {
  const a = await newCallback();
  const b = await newCallback();
  assert.equal((await srv.api("POST", `/v1/callbacks/${b.id}/cancel`)).status, 200);
  const page = await signIn(browser, srv.base, { token: srv.adminToken ?? "admin-secret-0001" });
  assert.equal(new URL(page.url()).pathname, "/console");
  await row(page, a.id).waitFor();
  await row(page, b.id).waitFor();
  await go(page, page.getByTestId("tab-cancelled"));
  await row(page, b.id).waitFor();
  assert.equal(await row(page, a.id).count(), 0, "a scheduled callback is not under Cancelled");
  assert.equal(await row(page, b.id).getAttribute("data-status"), "cancelled");
  await go(page, page.getByTestId("tab-scheduled"));
  await row(page, a.id).waitFor();
  assert.equal(await row(page, b.id).count(), 0);
  assert.equal(await row(page, a.id).getByTestId("callback-badge").count(), 1, "a pending row shows the Callback badge");
  await go(page, page.getByTestId("tab-all"));
  await page.getByTestId("filter-phone").fill(a.phone);
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.getByTestId("filter-phone").press("Enter")]);
  await row(page, a.id).waitFor();
  assert.equal(await page.getByTestId("callback-row").count(), 1, "the phone filter leaves one row");
  await page.context().close();
});

test("tiles and rows update live when a callback changes through the REST API", async () => {
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  await page.waitForFunction(() => document.body.getAttribute("data-live") === "open");
  const before = Number(await page.getByTestId("tile-requested").textContent());
  const pendingBefore = Number(await page.getByTestId("tile-pending").textContent());
  const cb = await newCallback();
  await page.waitForFunction((v) => Number(document.querySelector("[data-testid=tile-requested]").textContent) === v, before + 1);
  await page.waitForFunction((v) => Number(document.querySelector("[data-testid=tile-pending]").textContent) === v, pendingBefore + 1);
  await page.reload();
  await page.waitForFunction(() => document.body.getAttribute("data-live") === "open");
  await row(page, cb.id).waitFor();
  assert.equal((await srv.api("POST", `/v1/callbacks/${cb.id}/cancel`)).status, 200);
  await page.waitForFunction((id) => document.querySelector(`[data-callback-id="${id}"]`).getAttribute("data-status") === "cancelled", cb.id);
  await page.waitForFunction((v) => Number(document.querySelector("[data-testid=tile-pending]").textContent) === v, pendingBefore);
  await page.context().close();
});

test("cancel, and its guard once the callback is no longer scheduled", async () => {
  const a = await newCallback();
  const b = await newCallback();
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  await go(page, row(page, a.id).getByTestId("action-cancel"));
  await page.getByTestId("flash-ok").waitFor();
  assert.equal(await row(page, a.id).getAttribute("data-status"), "cancelled");
  assert.equal(await row(page, a.id).getByTestId("action-cancel").count(), 0, "a final callback offers no cancel");
  // The page still shows b as scheduled; it ends elsewhere before the click.
  assert.equal((await srv.api("POST", `/v1/callbacks/${b.id}/cancel`)).status, 200);
  await go(page, row(page, b.id).getByTestId("action-cancel"));
  await page.getByTestId("flash-error").waitFor();
  assert.match(await page.getByTestId("flash-error").textContent(), /cancelled/);
  const audit = await srv.api("GET", "/v1/audit?limit=50");
  assert.equal(audit.status, 200);
  assert.ok(audit.body.items.some((e) => e.action === "callback.cancel" && e.target === a.id && e.actor === "admin"), JSON.stringify(audit.body));
  await page.context().close();
});

test("bulk cancel asks for confirmation with the count, and does nothing when declined", async () => {
  const cbs = [await newCallback(), await newCallback()];
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  for (const cb of cbs) await row(page, cb.id).getByTestId("bulk-select").check();
  const asked = [];
  page.once("dialog", (d) => { asked.push(d.message()); d.dismiss(); });
  await page.getByTestId("bulk-cancel").click();
  assert.deepEqual(asked, ["Cancel 2 callbacks?"]);
  for (const cb of cbs) assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.status, "scheduled");
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await go(page, page.getByTestId("bulk-cancel"));
  await page.getByTestId("flash-ok").waitFor();
  for (const cb of cbs) assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.status, "cancelled");
  const audit = (await srv.api("GET", "/v1/audit?limit=10")).body.items;
  assert.ok(audit.some((e) => e.action === "bulk.cancel" && e.actor === "admin"));
  await page.context().close();
});

test("bulk on all matching the filter confirms the server's count; moving to another queue, single and bulk", async () => {
  const mine = [];
  for (let i = 0; i < 3; i++) mine.push(await newCallback({ queue: "sales", owner: "bob" }));
  const gone = await newCallback({ queue: "sales", owner: "bob" });
  assert.equal((await srv.api("POST", `/v1/callbacks/${gone.id}/cancel`)).status, 200);
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  await page.goto(srv.base + "/console?status=all&owner=bob");
  await row(page, gone.id).waitFor();
  await page.getByTestId("bulk-all").check();
  const asked = [];
  // The confirmation comes after the page has asked the server for the count.
  const declined = new Promise((r) => page.once("dialog", (d) => { asked.push(d.message()); d.dismiss().then(r); }));
  await page.getByTestId("bulk-reassign").click();
  await declined;
  assert.deepEqual(asked, ["Reassign 3 callbacks (all matching this filter)?"], "the cancelled one is not counted");
  for (const cb of mine) assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.owner, "bob");
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await go(page, page.getByTestId("bulk-reassign"));
  await page.getByTestId("flash-ok").waitFor();
  assert.match(await page.getByTestId("flash-ok").textContent(), /Done for 3 callbacks/);
  for (const cb of mine) assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.owner, null);
  let audit = (await srv.api("GET", "/v1/audit?limit=10")).body.items;
  assert.ok(audit.some((e) => e.action === "bulk.reassign" && e.target === "filter owner=bob" && /3 done/.test(e.detail)), JSON.stringify(audit));

  // One row moves to support; the other two move together.
  await page.goto(srv.base + "/console?status=scheduled&queue=sales");
  await row(page, mine[0].id).getByTestId("move-queue").selectOption("support");
  await go(page, row(page, mine[0].id).getByTestId("action-move"));
  await page.getByTestId("flash-ok").waitFor();
  assert.equal((await srv.api("GET", `/v1/callbacks/${mine[0].id}`)).body.queue, "support");
  for (const cb of mine.slice(1)) await row(page, cb.id).getByTestId("bulk-select").check();
  await page.getByTestId("bulk-queue").selectOption("support");
  page.once("dialog", (d) => { asked.push(d.message()); d.accept(); });
  await go(page, page.getByTestId("bulk-move"));
  await page.getByTestId("flash-ok").waitFor();
  assert.equal(asked.at(-1), "Move 2 callbacks?");
  for (const cb of mine) assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.queue, "support");
  audit = (await srv.api("GET", "/v1/audit?limit=10")).body.items;
  assert.ok(audit.some((e) => e.action === "callback.move" && e.target === mine[0].id), JSON.stringify(audit));
  assert.ok(audit.some((e) => e.action === "bulk.move" && /queue=support: 2 done/.test(e.detail)), JSON.stringify(audit));
  await page.context().close();
});

test("reassign and reschedule from a row; a bad value is shown and changes nothing", async () => {
  const cb = await newCallback();
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  await row(page, cb.id).getByTestId("reassign-owner").fill("alice");
  await go(page, row(page, cb.id).getByTestId("action-reassign"));
  await page.getByTestId("flash-ok").waitFor();
  assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.owner, "alice");
  await row(page, cb.id).getByTestId("reassign-owner").fill("zed");
  await go(page, row(page, cb.id).getByTestId("action-reassign"));
  await page.getByTestId("flash-error").waitFor();
  assert.match(await page.getByTestId("flash-error").textContent(), /owner/);
  assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.owner, "alice");
  // Several owners, separated by commas, are checked as `owners` (bob serves only sales).
  await row(page, cb.id).getByTestId("reassign-owner").fill("alice, bob");
  await go(page, row(page, cb.id).getByTestId("action-reassign"));
  await page.getByTestId("flash-error").waitFor();
  assert.match(await page.getByTestId("flash-error").textContent(), /`owners` lists `bob`, who is not in queue `support`/);
  const after = (await srv.api("GET", `/v1/callbacks/${cb.id}`)).body;
  assert.deepEqual([after.owner, after.owners], ["alice", ["alice"]], "unchanged");
  const due = (await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.due_at;
  await row(page, cb.id).getByTestId("reschedule-when").fill("in 3 hours");
  await go(page, row(page, cb.id).getByTestId("action-reschedule"));
  await page.getByTestId("flash-ok").waitFor();
  assert.notEqual((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.due_at, due);
  await page.context().close();
});

test("a form without the session's CSRF token is refused and changes nothing", async () => {
  const cb = await newCallback();
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  for (const form of [{ csrf: "forged" }, {}]) {
    const r = await page.request.post(`${srv.base}/console/callbacks/${cb.id}/cancel`, { form, maxRedirects: 0 });
    assert.equal(r.status(), 403);
  }
  assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.status, "scheduled");
  await page.context().close();
});

test("a read-only token sees but cannot change", async () => {
  const cb = await newCallback();
  const page = await signIn(browser, srv.base, { token: RO });
  await row(page, cb.id).waitFor();
  assert.equal(await page.getByTestId("action-cancel").count(), 0);
  assert.equal(await page.getByTestId("bulk-cancel").count(), 0);
  const csrf = await page.locator("input[name=csrf]").first().inputValue();
  await page.request.post(`${srv.base}/console/callbacks/${cb.id}/cancel`, { form: { csrf } });
  assert.equal((await srv.api("GET", `/v1/callbacks/${cb.id}`)).body.status, "scheduled");
  await page.context().close();
});

test("agent: toggles its state, books a callback, and sees it in the banner and its list", async () => {
  const page = await signIn(browser, srv.base, { agent: "alice", password: "alice-pw" });
  assert.equal(new URL(page.url()).pathname, "/agent");
  assert.equal(await page.getByTestId("softphone-status").textContent(), "unregistered");
  // Without a registered softphone the agent shows as offline; the toggle
  // still records its choice (and the audit log says so).
  assert.equal(await page.getByTestId("agent-state").textContent(), "offline");
  await Promise.all([page.waitForNavigation(), page.getByTestId("agent-state").click()]);
  await page.getByTestId("flash-ok").waitFor();
  assert.match(await page.getByTestId("flash-ok").textContent(), /Set to away/);
  const p = phone();
  await page.getByTestId("book-phone").fill(p);
  await page.getByTestId("book-when").fill("tomorrow 10am");
  await page.locator("output.preview").first().filter({ hasText: "→" }).waitFor();
  await page.getByTestId("book-notes").fill("wants the refund status");
  await go(page, page.getByTestId("book-submit"));
  await page.getByTestId("flash-ok").waitFor();
  const mine = (await srv.api("GET", `/v1/callbacks?phone=${encodeURIComponent(p)}`)).body.items;
  assert.equal(mine.length, 1);
  assert.equal(mine[0].owner, "alice");
  assert.equal(mine[0].origin, "agent");
  assert.equal(mine[0].when, "tomorrow 10am");
  await page.locator(`[data-testid=callback-row][data-callback-id="${mine[0].id}"]`).waitFor();
  // The banner shows the next callback alice owns: the earliest due.
  const owned = (await srv.api("GET", "/v1/callbacks?owner=alice&status=scheduled")).body.items.sort((x, y) => x.due_at.localeCompare(y.due_at));
  const banner = page.getByTestId("pending-banner");
  await banner.waitFor();
  assert.equal(await banner.getAttribute("data-callback-id"), owned[0].id);
  assert.match(await banner.textContent(), new RegExp(owned[0].notes ?? "no notes"));
  // An agent cannot use supervisor pages or see another queue's callbacks.
  const other = await srv.api("POST", "/v1/callbacks", { phone: phone(), queue: "sales", scheduled_at: inHours(30) });
  assert.equal(other.status, 201);
  const r = await page.request.get(`${srv.base}/console/callbacks/${other.body.id}`);
  assert.equal(r.status(), 404);
  await page.goto(srv.base + "/console");
  assert.equal(new URL(page.url()).pathname, "/agent");
  const audit = (await srv.api("GET", "/v1/audit?limit=20")).body.items;
  assert.ok(audit.some((e) => e.actor === "agent:alice" && e.action === "callback.create"));
  assert.ok(audit.some((e) => e.actor === "agent:alice" && e.action === "agent.state" && e.target === "alice" && e.detail === "away"));
  await page.context().close();
});

test("agent: the screen pop shows when a customer-first callback to a SIPp carrier reserves them", { timeout: 120_000 }, async () => {
  // The carrier (a SIPp UAS that rings and never answers) and carol's
  // softphone (a SIPp UAS registered as carol) hold their ports first.
  const carrier = await sippUas("dial_carrier_noanswer.xml", { vars: { dir: true, rtp_port: 9 } });
  const phoneUas = await sippUas("dial_agent_answer.xml", { vars: { dir: true, rtp_port: 9, talk_ms: 1000 } });
  const pop = await startServer({
    profiles: {
      carrier: `proxy = "sip:127.0.0.1:${carrier.port}"\ndomain = "carrier.test"\nregister = false\ncaller_id = "+15550100"\ncodecs = ["PCMU", "PCMA"]\noptions_ping = "0"\n`,
    },
    extra: `[[agents]]\nid = "carol"\npassword = "carol-pw"\nqueues = ["pop"]\n\n[[queues]]\nname = "pop"\nprofile = "carrier"\nmode = "customer_first"\ntimezone = "UTC"\nhours = ["mon-sun 00:00-24:00"]\nmax_attempts = 1\nring_timeout = "3s"\n`,
  });
  try {
    const reg = await sippUac("dial_agent_register.xml", pop.sip, ["-s", "carol", "-au", "carol", "-ap", "carol-pw"], { vars: { contact_port: phoneUas.port } });
    assert.equal(reg.code, 0, reg.out);
    const number = phone();
    // An earlier callback of this number, cancelled: the pop lists it.
    const earlier = await pop.api("POST", "/v1/callbacks", { phone: number, queue: "pop", scheduled_at: inHours(30), notes: "asked about the March invoice" });
    assert.equal(earlier.status, 201, JSON.stringify(earlier.body));
    assert.equal((await pop.api("POST", `/v1/callbacks/${earlier.body.id}/cancel`)).status, 200);

    const page = await signIn(browser, pop.base, { agent: "carol", password: "carol-pw" });
    assert.equal(new URL(page.url()).pathname, "/agent");
    await page.waitForSelector("body[data-live=open]");
    await page.waitForSelector("[data-testid=agent-state][data-state=available]");

    // Due now: the scheduler reserves carol and dials the carrier.
    const cb = await pop.api("POST", "/v1/callbacks", { phone: number, queue: "pop", notes: "refund for order 1234" });
    assert.equal(cb.status, 201, JSON.stringify(cb.body));
    const popup = page.locator(`[data-testid=screen-pop][data-callback-id="${cb.body.id}"]`);
    await popup.waitFor({ timeout: 30_000 });
    const text = await popup.textContent();
    assert.ok(text.includes(number), text);
    assert.ok(text.includes("refund for order 1234"), text);
    assert.match(text, /Attempts so far: [01] of 1/);
    assert.ok(text.includes("asked about the March invoice"), "this number's earlier callback: " + text);

    // The carrier really was called: it rang until redial gave up (CANCEL).
    const out = await carrier.done;
    assert.equal(out.code, 0, out.out);
    let final;
    for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      final = (await pop.api("GET", `/v1/callbacks/${cb.body.id}`)).body;
      if (final.status !== "scheduled" && final.status !== "in_progress") break;
    }
    assert.equal(final.status, "exhausted", JSON.stringify(final));
    const attempts = (await pop.api("GET", `/v1/callbacks/${cb.body.id}/attempts`)).body.items;
    assert.equal(attempts[0].outcome, "no_answer", JSON.stringify(attempts));
    await page.context().close();
  } finally {
    carrier.kill();
    phoneUas.kill();
    await pop.stop();
  }
});

test("GET /v1/events streams callback changes as server-sent events", async () => {
  const ctl = new AbortController();
  const r = await fetch(srv.base + "/v1/events?types=callback.created", { headers: { authorization: "Bearer admin-secret-0001" }, signal: ctl.signal });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/event-stream/);
  const reader = r.body.getReader();
  const cb = await newCallback();
  let text = "";
  while (!text.includes(cb.id)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  ctl.abort();
  assert.match(text, /event: callback\n/);
  assert.match(text, /id: \d+\n/);
  const data = JSON.parse(text.split("\n").find((l) => l.startsWith("data:") && l.includes(cb.id)).slice(5));
  assert.equal(data.id, cb.id);
  assert.equal(data.status, "scheduled");
  assert.equal((await srv.api("GET", "/v1/events?types=nope")).status, 400);
});

test("every page passes an axe-core scan with no serious or critical violation", async () => {
  const cb = await newCallback();
  const sup = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  const agent = await signIn(browser, srv.base, { agent: "alice", password: "alice-pw" });
  const anon = await (await browser.newContext()).newPage();
  const pages = [
    [anon, "/login"],
    [sup, "/console"],
    [sup, `/console/callbacks/${cb.id}`],
    [sup, "/console/agents"],
    [sup, "/console/trunks"],
    [agent, "/agent"],
  ];
  const problems = [];
  for (const [page, path] of pages) {
    await page.goto(srv.base + path);
    // Evaluated through the debugging protocol, which the page's CSP does not govern.
    await page.evaluate(AXE);
    const res = await page.evaluate(async () => (await window.axe.run(document)).violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })));
    for (const v of res) if (v.impact === "serious" || v.impact === "critical") problems.push({ path, ...v });
  }
  assert.deepEqual(problems, []);
  for (const p of [sup, agent, anon]) await p.context().close();
});

// Last: it stops the server.
test("the server stops promptly while a console page holds its event stream open", { timeout: 30_000 }, async () => {
  const page = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  await page.waitForFunction(() => document.body.getAttribute("data-live") === "open");
  // A hung graceful shutdown would leave this promise pending until the
  // runner's own timeout fails the test.
  await srv.stop();
  await page.context().close();
});
