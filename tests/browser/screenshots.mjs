// Takes a screenshot of each console page into docs/console/ (used by
// docs/console.md): starts the real binary, books a few callbacks through
// the REST API, has a few dialled to a SIPp carrier that answers busy (so
// the charts have attempts and the agent workspace a screen pop), and signs
// in as a supervisor and as an agent.
// Run: `node screenshots.mjs` here after `cargo build`.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startServer, launch, signIn, sippUas, sippUac, ROOT } from "./harness.mjs";

const out = join(ROOT, "docs/console");
mkdirSync(out, { recursive: true });
const DIALLED = 4;
const carrier = await sippUas("dial_carrier_busy.xml", { calls: DIALLED, vars: { dir: true, rtp_port: 9 } });
const softphone = await sippUas("dial_agent_answer.xml", { vars: { dir: true, rtp_port: 9, talk_ms: 1000 } });
const srv = await startServer({
  profiles: { carrier: `proxy = "sip:127.0.0.1:${carrier.port}"\ndomain = "carrier.test"\nregister = false\ncaller_id = "+15550100"\noptions_ping = "0"\n` },
  extra: `[[agents]]\nid = "carol"\npassword = "carol-pw"\nqueues = ["outbound"]\n\n[[queues]]\nname = "outbound"\nprofile = "carrier"\ntimezone = "UTC"\nhours = ["mon-sun 00:00-24:00"]\nmax_attempts = 1\n`,
});
const browser = await launch();
try {
  const inH = (h) => new Date(Date.now() + h * 3600_000).toISOString();
  const made = [];
  const seed = [
    ["+15550100001", "support", { when: "tomorrow morning", notes: "billing question, prefers mornings" }],
    ["+15550100002", "support", { scheduled_at: inH(3), owner: "alice", notes: "refund status" }],
    ["+15550100003", "sales", { when: "monday 10am", timezone: "America/Chicago", notes: "upgrade quote" }],
    ["+15550100004", "support", { scheduled_at: inH(5), notes: "line keeps dropping" }],
    ["+15550100005", "sales", { scheduled_at: inH(26), owner: "bob" }],
  ];
  for (const [phone, queue, extra] of seed) {
    const r = await srv.api("POST", "/v1/callbacks", { phone, queue, ...extra });
    made.push(r.body);
  }
  await srv.api("POST", `/v1/callbacks/${made[3].id}/cancel`);
  const sup = await signIn(browser, srv.base, { token: "admin-secret-0001" });
  const shots = [
    ["console.png", "/console"],
    ["detail.png", `/console/callbacks/${made[0].id}`],
    ["agents.png", "/console/agents"],
    ["trunks.png", "/console/trunks"],
  ];
  for (const [file, path] of shots) {
    await sup.goto(srv.base + path);
    await sup.screenshot({ path: join(out, file), fullPage: true });
  }
  const agent = await signIn(browser, srv.base, { agent: "alice", password: "alice-pw" });
  await agent.screenshot({ path: join(out, "agent.png"), fullPage: true });
  // Carol's softphone registers; her workspace is open when her callbacks are dialled.
  const reg = await sippUac("dial_agent_register.xml", srv.sip, ["-s", "carol", "-au", "carol", "-ap", "carol-pw"], { vars: { contact_port: softphone.port } });
  if (reg.code !== 0) throw new Error("carol's registration failed:\n" + reg.out);
  const carol = await signIn(browser, srv.base, { agent: "carol", password: "carol-pw" });
  await carol.waitForSelector("body[data-live=open]");
  const dialled = [];
  for (let i = 0; i < DIALLED; i++) {
    const r = await srv.api("POST", "/v1/callbacks", { phone: `+1555020000${i}`, queue: "outbound", notes: ["asked for a call about the March invoice", "wants the upgrade price", "delivery date", "refund for order 1234"][i] });
    dialled.push(r.body.id);
    await carol.locator(`[data-testid=screen-pop][data-callback-id="${r.body.id}"]`).waitFor({ timeout: 30_000 });
    for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((ok) => setTimeout(ok, 100))) {
      if ((await srv.api("GET", `/v1/callbacks/${r.body.id}`)).body.status !== "in_progress") break;
    }
  }
  await carol.screenshot({ path: join(out, "agent-pop.png"), fullPage: true });
  await sup.goto(srv.base + "/console");
  await sup.screenshot({ path: join(out, "console.png"), fullPage: true });
  await sup.locator("[data-testid=chart-per-hour]").screenshot({ path: join(out, "chart-per-hour.png") });
  await sup.locator("[data-testid=chart-delay]").screenshot({ path: join(out, "chart-delay.png") });
  const anon = await (await browser.newContext({ viewport: { width: 1200, height: 700 } })).newPage();
  await anon.goto(srv.base + "/login");
  await anon.screenshot({ path: join(out, "login.png") });
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
  await srv.stop();
  carrier.kill();
  softphone.kill();
}
