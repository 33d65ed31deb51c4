// Takes a screenshot of each console page into docs/console/ (used by
// docs/console.md): starts the real binary, books a few callbacks through
// the REST API, signs in as a supervisor and as an agent.
// Run: `node screenshots.mjs` here after `cargo build`.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startServer, launch, signIn, ROOT } from "./harness.mjs";

const out = join(ROOT, "docs/console");
mkdirSync(out, { recursive: true });
const srv = await startServer();
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
  const anon = await (await browser.newContext({ viewport: { width: 1200, height: 700 } })).newPage();
  await anon.goto(srv.base + "/login");
  await anon.screenshot({ path: join(out, "login.png") });
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
  await srv.stop();
}
