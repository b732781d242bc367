// The rights portal and the privacy console in headless Chromium (Debian's package, driven by
// playwright-core): the flows a person and a privacy officer go through, axe-core on every page,
// and a screenshot of each page under target/browser/ for reviewers (whole page; the first
// screen alone under first-screen/).
//
// Started by tests/browser/run, which builds the service and provides Chromium, Node packages
// and an SMTP server. Everything else (the service, its database, a receiver for the main
// app's webhooks) is started here and stopped at the end. BROWSER_DATABASE_URL, when set to a
// PostgreSQL server, runs the service on a fresh database there instead of SQLite.

import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const bin = process.env.BROWSER_SUITE_BIN || path.join(root, "target/debug/consentry");
const shots = path.join(root, "target/browser");
const python = process.env.BROWSER_SUITE_PYTHON || "python3";
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const TOKEN_SECRET = "browser-suite-subject-token-secret-0123456789";
const WEBHOOK_SECRET = "whsec_" + Buffer.from("browser-suite-webhook-secret-012345").toString("base64");

const failures = [];
const children = [];
/** Work undone when the suite ends, after the children stop: the PostgreSQL database it made. */
const cleanups = [];
let checks = 0;

function check(name, ok, detail = "") {
  checks += 1;
  if (!ok) {
    failures.push(`${name}${detail ? ": " + detail : ""}`);
    console.log(`  FAIL ${name} ${detail}`);
  } else {
    console.log(`  ok   ${name}`);
  }
}

async function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(what, probe, seconds = 20) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    try {
      const value = await probe();
      if (value) return value;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** The current RFC 6238 code (HMAC-SHA1, 6 digits, 30 s) of a base32 seed: the officer's phone. */
function totp(base32) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const seed = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = crypto.createHmac("sha1", seed).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1e6).toString().padStart(6, "0");
}

/** An HS256 subject token, as the main app mints it. */
function subjectToken(sub) {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const now = Math.floor(Date.now() / 1000);
  const payload = b64url(JSON.stringify({ sub, iat: now, exp: now + 600, jti: crypto.randomUUID() }));
  const signature = crypto.createHmac("sha256", TOKEN_SECRET).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** The service's database: SQLite in the data folder, or a fresh PostgreSQL database. */
function databaseUrl(dataDir) {
  const server = process.env.BROWSER_DATABASE_URL;
  if (!server) return `sqlite://${path.join(dataDir, "consentry.db")}?mode=rwc`;
  const name = `browser_${crypto.randomBytes(6).toString("hex")}`;
  execFileSync("psql", [server, "-q", "-c", `CREATE DATABASE ${name}`]);
  cleanups.push(() => execFileSync("psql", [server, "-q", "-c", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]));
  const url = new URL(server);
  url.pathname = `/${name}`;
  return url.toString();
}

async function main() {
  fs.mkdirSync(path.join(shots, "first-screen"), { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "consentry-browser-"));
  const dataDir = path.join(work, "data");
  const [port, smtpPort, hookPort] = [await freePort(), await freePort(), await freePort()];
  const base = `http://127.0.0.1:${port}`;

  // The SMTP server every email goes to.
  const mailbox = path.join(work, "box");
  children.push(
    spawn(python, ["-m", "aiosmtpd", "-n", "-l", `127.0.0.1:${smtpPort}`, "-c", "aiosmtpd.handlers.Mailbox", mailbox], {
      stdio: "ignore",
    }),
  );
  await waitFor("the SMTP server", () => new Promise((ok) => net.connect(smtpPort, "127.0.0.1").on("connect", () => ok(true)).on("error", () => ok(false))));

  // The main app: receives the jobs Consentry sends it.
  const jobs = [];
  let hooksFail = false;
  const hooks = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      try {
        jobs.push(JSON.parse(body));
      } catch {
        // not JSON: ignore
      }
      res.writeHead(hooksFail ? 500 : 200).end();
    });
  });
  await new Promise((ok) => hooks.listen(hookPort, "127.0.0.1", ok));

  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CONSENTRY_LISTEN: `127.0.0.1:${port}`,
    CONSENTRY_DATA_DIR: dataDir,
    DATABASE_URL: "",
    CONSENTRY_SUBJECT_TOKEN_SECRET: TOKEN_SECRET,
    CONSENTRY_WEBHOOK_SECRET: WEBHOOK_SECRET,
    CONSENTRY_WEBHOOKS__URL: `http://127.0.0.1:${hookPort}/hooks`,
    CONSENTRY_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    CONSENTRY_MAIL__TLS: "none",
    CONSENTRY_CONTROLLER__NAME: "Lumora",
    CONSENTRY_PORTAL__SIGN_IN_URL: "https://app.example.com/login",
    CONSENTRY_OUTBOX__POLL_INTERVAL_MS: "100",
    // The consent script: the banner asks about analytics and email news; a GPC signal opts
    // out of the news; the visitor's country comes from a header a CDN would set.
    CONSENTRY_BANNER__PURPOSES: '["analytics", "marketing_email"]',
    CONSENTRY_BANNER__GPC_OPT_OUT: '["marketing_email"]',
    CONSENTRY_BANNER__CONSENT_MODE: '{analytics = ["analytics_storage"], marketing_email = ["ad_user_data"]}',
    CONSENTRY_BANNER__COUNTRY_HEADER: "X-Country",
    CONSENTRY_BANNER__DEFAULT_COUNTRY: "DE",
    // One attempt: a failed delivery is a dead letter at once, for the console's retry.
    CONSENTRY_OUTBOX__MAX_ATTEMPTS: "1",
    RUST_LOG: "warn",
  };
  fs.mkdirSync(dataDir, { recursive: true });
  env.DATABASE_URL = databaseUrl(dataDir);
  const cli = (...args) => execFileSync(bin, args, { env, cwd: root, encoding: "utf8" });
  const admin = cli("keys", "create", "--name", "browser-admin", "--role", "admin").trim().split("\n").pop();
  const service = cli("keys", "create", "--name", "browser-main-app", "--role", "service").trim().split("\n").pop();
  const server = spawn(bin, ["serve"], { env, cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  children.push(server);
  await waitFor("the service", async () => (await fetch(`${base}/health/ready`)).ok);

  const api = async (method, url, key, body) => {
    const resp = await fetch(base + url, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    return { status: resp.status, body: text ? JSON.parse(text) : null };
  };
  const event = async (type, data) => {
    const body = JSON.stringify({ type, occurred_at: new Date().toISOString(), data });
    const id = `msg_${crypto.randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000).toString();
    const key = Buffer.from(WEBHOOK_SECRET.slice("whsec_".length), "base64");
    const signature = crypto.createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
    const resp = await fetch(`${base}/v1/hooks/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${signature}` },
      body,
    });
    if (!resp.ok) throw new Error(`event ${type}: ${resp.status} ${await resp.text()}`);
  };
  /** The text parts of every email the SMTP server received, newest last. */
  const mails = () => {
    const script = `
import email, json, os, sys
from email import policy
box = os.path.join(sys.argv[1], "new")
out = []
for name in sorted(os.listdir(box)) if os.path.isdir(box) else []:
    m = email.message_from_binary_file(open(os.path.join(box, name), "rb"), policy=policy.default)
    text = "".join(p.get_content() for p in m.walk() if p.get_content_type() == "text/plain")
    out.append({"to": m["To"], "subject": m["Subject"], "text": text, "at": os.path.getmtime(os.path.join(box, name))})
out.sort(key=lambda m: m["at"])
print(json.dumps(out))`;
    return JSON.parse(execFileSync(python, ["-c", script, mailbox], { encoding: "utf8" }));
  };
  const linkTo = (to, part) =>
    waitFor(`an email to ${to} with ${part}`, () => {
      const found = mails().reverse().find((m) => m.to.includes(to) && m.text.includes(part));
      return found && found.text.match(new RegExp(`https?://\\S*${part.replace(/[?]/g, "\\?")}\\S*`))[0];
    });

  // What the company has configured: purposes and the people the main app knows.
  const purpose = (key, en, zh, extra = {}) => ({
    key,
    texts: { en: { title: en[0], description: en[1] }, "zh-CN": { title: zh[0], description: zh[1] } },
    legal_basis: "consent",
    recipients: [{ name: "Northwind Cloud Inc.", role: "processor", country: "US" }],
    data_categories: ["photos"],
    retention_period: "P1Y",
    ...extra,
  });
  for (const body of [
    purpose("photo_tagging", ["Tag people in your photos", "We suggest names for the faces in photos you upload."], ["照片人物标记", "我们会为您上传的照片中的人脸推荐姓名。"], { retention_period: "P30D" }),
    purpose("marketing_email", ["News and offers by email", "Occasional emails about new features and offers."], ["邮件推送新闻和优惠", "不定期向您发送新功能和优惠信息。"], { direct_marketing: true, recipients: [] }),
    purpose("cloud_backup", ["Back up photos abroad", "Your photos are backed up in our data centre in Singapore."], ["境外备份照片", "您的照片将备份在我们位于新加坡的数据中心。"], {
      separate_consent: true,
      separate_consent_reason: "cross_border_transfer",
      recipients: [{ name: "Lumora Singapore Pte. Ltd.", role: "processor", country: "SG" }],
      retention_period: "P6M",
    }),
    purpose("analytics", ["Statistics about how the site is used", "Counts of visits and clicks, never tied to your name."], ["网站使用统计", "访问和点击次数的统计，不会与您的姓名关联。"], { recipients: [], retention_period: "P13M" }),
    purpose("account", ["Your account", "Your sign-in, settings and the photos you keep with us."], ["您的账户", "您的登录信息、设置以及您保存的照片。"], { legal_basis: "contract", required: true }),
  ]) {
    const r = await api("POST", "/v1/admin/purposes", admin, body);
    if (r.status !== 201) throw new Error(`purpose ${body.key}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  await event("subject.upserted", { external_id: "ann", email: "ann@example.com", locale: "en", jurisdiction: "DE" });
  await event("subject.upserted", { external_id: "li", email: "li@example.com", locale: "zh-CN", jurisdiction: "CN" });

  const browser = await chromium.launch({
    executablePath: process.env.BROWSER_SUITE_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // A phone-sized window: the parent in the brief reads on a phone. axe needs its script in
  // the page, which the portal's CSP rightly refuses; the test context bypasses it.
  const newContext = (locale) =>
    browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, locale, bypassCSP: true, acceptDownloads: true });

  /** Runs axe-core on the page and saves a screenshot; serious or critical findings fail. */
  const review = async (page, name) => {
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
    await page.screenshot({ path: path.join(shots, "first-screen", `${name}.png`) });
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(async () => await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }));
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    check(`axe: ${name}`, bad.length === 0, bad.map((v) => `${v.id} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`).join("; "));

    // What a reader meets: no text under 16 px, and on the portal (read on phones) nothing
    // wider than the 390 px screen. Screen-reader-only text counts: it must not overflow either.
    const layout = await page.evaluate(() => {
      const small = [];
      for (const el of document.querySelectorAll("body *")) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || el.closest("svg") || getComputedStyle(el).display === "none") continue;
        const size = parseFloat(getComputedStyle(el).fontSize);
        if (size < 16) small.push(`${el.tagName.toLowerCase()}${el.className ? "." + el.className : ""} ${size}px`);
      }
      const text = document.body.cloneNode(true);
      text.querySelectorAll("code, textarea, script, style, [lang=en]").forEach((n) => n.remove());
      // Links are addresses, not words.
      const words = text.textContent.replace(/https?:\/\/\S+/g, " ");
      const codes = [...new Set(words.match(/\b[a-z]+(?:_[a-z0-9]+)+\b|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) || [])];
      return { small: [...new Set(small)], wide: document.documentElement.scrollWidth, screen: window.innerWidth, codes };
    });
    check(`text of 16 px or more: ${name}`, layout.small.length === 0, layout.small.slice(0, 5).join(", "));
    check(`no code words: ${name}`, layout.codes.length === 0, layout.codes.slice(0, 5).join(", "));
    if (new URL(page.url()).pathname.startsWith("/portal")) {
      check(`fits a 390 px screen: ${name}`, layout.wide <= layout.screen, `${layout.wide} px wide`);
    }
  };

  try {
    // --- A person signed in by the main app, in English ---
    console.log("portal, in English");
    const ctx = await newContext("en-GB");
    const page = await ctx.newPage();
    await page.goto(`${base}/portal`);
    await review(page, "01-signed-out");
    await page.goto(`${base}/portal/session?token=${subjectToken("ann")}`);
    check("the handoff lands at home", new URL(page.url()).pathname === "/portal");
    const cookies = await ctx.cookies();
    check("the session cookie is HttpOnly", cookies.some((c) => c.name === "consentry_portal" && c.httpOnly && c.sameSite === "Lax"));
    await review(page, "02-home");

    const marketing = page.locator("section", { has: page.getByRole("heading", { name: "News and offers by email" }) });
    await marketing.getByRole("button", { name: /Give consent/ }).click();
    await page.getByText("You gave consent to").waitFor();
    check("the main app's check says allowed", (await api("GET", "/v1/subjects/ann/consents/marketing_email", service)).body.allowed === true);
    await marketing.getByRole("button", { name: /Withdraw consent/ }).click();
    await page.getByText("You withdrew consent").waitFor();
    await review(page, "03-home-withdrawn");
    const after = (await api("GET", "/v1/subjects/ann/consents/marketing_email", service)).body;
    check("after withdrawing, the check says withdrawn", after.allowed === false && after.reason === "withdrawn", JSON.stringify(after));

    await page.getByRole("link", { name: "History" }).click();
    await page.getByText("Your record is intact.").waitFor();
    await review(page, "04-history");
    const [receipt] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: /Download/ }).first().click()]);
    check("a receipt downloads", (await receipt.suggestedFilename()).startsWith("consent-receipt-"));

    await page.getByRole("link", { name: "Privacy policy" }).click();
    await review(page, "05-policy");
    await page.getByRole("link", { name: /See every change/ }).click();
    await page.getByText("What changed in the policy").first().waitFor();
    await review(page, "06-policy-diff");

    // File an export, approve it as the privacy team, fulfil it as the main app, download it.
    await page.goto(`${base}/portal/requests/new`);
    await review(page, "07-request-choose");
    await page.getByRole("link", { name: /Get a copy of your data/ }).click();
    await review(page, "08-request-details");
    await page.getByRole("button", { name: "Continue" }).click();
    await review(page, "09-request-check");
    await page.getByRole("button", { name: "File the request" }).click();
    await page.getByText("Request received").waitFor();
    await review(page, "10-request-filed");
    const requestId = new URL(page.url()).pathname.split("/").pop();
    const approved = await api("POST", `/v1/admin/requests/${requestId}/approve`, admin, {});
    check("the privacy team approves", approved.status === 200, JSON.stringify(approved.body));
    const job = await waitFor("the export job", () => jobs.find((j) => j.type === "fulfilment.requested" && j.data.request_id === requestId));
    const done = await api("POST", `/v1/fulfilments/${job.data.fulfilment_id}/complete`, service, { data: { photos: [{ id: "p1", caption: "beach" }] } });
    check("the main app reports the data", done.status === 200, JSON.stringify(done.body));
    const exportLink = await linkTo("ann@example.com", "/export?token=");
    await page.goto(exportLink.replace(/^https?:\/\/[^/]+/, base));
    await page.getByText("Your data is ready").waitFor();
    await review(page, "11-export-ready");
    const [pkg] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download your data" }).click()]);
    check("the export package downloads", (await pkg.suggestedFilename()) === `request-${requestId}.zip`, await pkg.suggestedFilename());
    await page.goto(`${base}/portal/requests/${requestId}`);
    await review(page, "12-request-detail");
    await page.goto(`${base}/portal/requests`);
    await review(page, "13-requests");
    await ctx.close();

    // --- A guardian follows the link in the email ---
    console.log("guardian link");
    const born = new Date(Date.now() - 10 * 365.25 * 86400e3).toISOString().slice(0, 10);
    await event("subject.upserted", { external_id: "kid", email: "kid@example.com", locale: "en", jurisdiction: "FR", birth_date: born, guardian_email: "parent@example.com" });
    const guardianLink = await linkTo("parent@example.com", "/guardian/confirm?token=");
    const gctx = await newContext("en-GB");
    const gpage = await gctx.newPage();
    await gpage.goto(guardianLink.replace(/^https?:\/\/[^/]+/, base));
    await review(gpage, "14-guardian");
    check("nothing is chosen for the guardian", (await gpage.locator("input[type=radio]:checked").count()) === 0);
    check("the page says which question of how many", (await gpage.getByText("Question 1 of 2").count()) === 1);
    await gpage.getByRole("button", { name: "Record and go to the next question" }).click();
    await gpage.getByText("There is a problem").waitFor();
    await review(gpage, "15-guardian-errors");
    await gpage.getByRole("group", { name: "Tag people in your photos" }).getByLabel("Yes, I agree").check();
    await gpage.getByRole("group", { name: "News and offers by email" }).getByLabel("No").check();
    await gpage.getByRole("group", { name: "Statistics about how the site is used" }).getByLabel("No").check();
    await gpage.getByRole("button", { name: "Record and go to the next question" }).click();
    await gpage.getByText("Question 2 of 2").waitFor();
    check("a purpose that needs its own consent is asked alone", (await gpage.getByRole("group").count()) === 1);
    check("a French parent reads no note of Chinese law", (await gpage.getByText("PIPL").count()) === 0);
    await review(gpage, "15b-guardian-second-question");
    await gpage.getByRole("group", { name: "Back up photos abroad" }).getByLabel("No").check();
    await gpage.getByRole("button", { name: "Record my answers" }).click();
    await gpage.getByText("your answers are recorded").waitFor();
    await review(gpage, "16-guardian-done");
    const kid = (await api("GET", "/v1/subjects/kid/consents/photo_tagging", service)).body;
    check("the guardian's consent counts", kid.allowed === true, JSON.stringify(kid));
    await gpage.goto(guardianLink.replace(/^https?:\/\/[^/]+/, base));
    await review(gpage, "17-guardian-used");
    // The lasting link: the child's choices, each with one button.
    const choicesLink = await linkTo("parent@example.com", "/guardian/choices?token=");
    await gpage.goto(choicesLink.replace(/^https?:\/\/[^/]+/, base));
    await review(gpage, "17b-guardian-choices");
    const news = () => gpage.locator("section", { has: gpage.getByRole("heading", { name: "News and offers by email" }) });
    await news().getByRole("button", { name: "Agree" }).click();
    await gpage.getByText("Changed just now.").waitFor();
    await review(gpage, "17c-guardian-changed");
    const given = (await api("GET", "/v1/subjects/kid/consents/marketing_email", service)).body;
    check("the guardian gives with one button", given.allowed === true, JSON.stringify(given));
    await news().getByRole("button", { name: "Withdraw my agreement" }).click();
    await news().getByRole("button", { name: "Agree" }).waitFor();
    const withdrawnKid = (await api("GET", "/v1/subjects/kid/consents/marketing_email", service)).body;
    check("the guardian withdraws with the same one button", withdrawnKid.allowed === false, JSON.stringify(withdrawnKid));
    await gctx.close();

    // --- One-click unsubscribe from a marketing email ---
    console.log("unsubscribe");
    await api("PUT", "/v1/me/consents/marketing_email", subjectToken("ann"), { granted: true, policy_version: 2 });
    const link = (await api("GET", "/v1/subjects/ann/consents/marketing_email/unsubscribe", service)).body;
    const uctx = await newContext("en-GB");
    const upage = await uctx.newPage();
    await upage.goto(link.url.replace(/^https?:\/\/[^/]+/, base));
    await review(upage, "18-unsubscribe");
    await upage.getByRole("button", { name: "Unsubscribe" }).click();
    await upage.getByText("You are unsubscribed").waitFor();
    await review(upage, "19-unsubscribed");
    check("unsubscribing withdraws", (await api("GET", "/v1/subjects/ann/consents/marketing_email", service)).body.reason === "withdrawn");
    await api("PUT", "/v1/me/consents/marketing_email", subjectToken("ann"), { granted: true, policy_version: 2 });
    const oneClick = await fetch(link.url.replace(/^https?:\/\/[^/]+/, base), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: link.list_unsubscribe_post });
    check("the provider's one-click POST works", oneClick.ok);
    check("one click withdraws", (await api("GET", "/v1/subjects/ann/consents/marketing_email", service)).body.reason === "withdrawn");
    await uctx.close();

    // --- A parent in China: each purpose asked on its own; two granted, two declined ---
    console.log("guardian link, in Chinese");
    await event("subject.upserted", { external_id: "xiaohong", name: "小红", email: "xiaohong@example.com", locale: "zh-CN", jurisdiction: "CN", birth_date: born, guardian_email: "mama@example.com" });
    const mamaLink = await linkTo("mama@example.com", "/guardian/confirm?token=");
    const mctx = await newContext("zh-CN");
    const mpage = await mctx.newPage();
    await mpage.goto(mamaLink.replace(/^https?:\/\/[^/]+/, base));
    await review(mpage, "17d-zh-guardian");
    check("the page names the child", (await mpage.getByRole("heading", { name: "为小红作出决定" }).count()) === 1);
    const answers = { analytics: "不同意", cloud_backup: "同意", marketing_email: "不同意", photo_tagging: "同意" };
    for (let n = 1; n <= 4; n += 1) {
      await mpage.getByText(`第 ${n} 个问题，共 4 个`).waitFor();
      check(`question ${n} asks one purpose`, (await mpage.getByRole("group").count()) === 1);
      const key = (await mpage.locator("input[type=radio]").first().getAttribute("name")).replace("decision.", "");
      await mpage.locator(`input[name="decision.${key}"][value="${answers[key] === "同意" ? "yes" : "no"}"]`).check();
      await mpage.getByRole("button", { name: n === 4 ? "提交我的决定" : "提交并进入下一个问题" }).click();
    }
    await mpage.getByText("谢谢，您的决定已记录").waitFor();
    await review(mpage, "17e-zh-guardian-done");
    const granted = await Promise.all(["cloud_backup", "photo_tagging", "marketing_email"].map(async (k) => (await api("GET", `/v1/subjects/xiaohong/consents/${k}`, service)).body.allowed));
    check("both separate consents are granted, the declined one is not", granted.join() === "true,true,false", granted.join());
    await mctx.close();

    // --- The Chinese pages, and a request without an account ---
    console.log("portal, in Chinese");
    const zctx = await newContext("zh-CN");
    const zpage = await zctx.newPage();
    await zpage.goto(`${base}/portal/session?token=${subjectToken("li")}`);
    await zpage.getByText("您的隐私选择").first().waitFor();
    check("the Chinese home page is in Chinese", (await zpage.locator("html").getAttribute("lang")) === "zh-CN");
    await review(zpage, "20-zh-home");
    await zpage.goto(`${base}/portal/policies/privacy-policy`);
    await review(zpage, "21-zh-policy");
    await zpage.goto(`${base}/portal/requests/new/object`);
    await review(zpage, "22-zh-object");
    await zpage.goto(`${base}/portal/no-such-page`);
    await review(zpage, "23-zh-not-found");
    await zctx.close();

    const ectx = await newContext("zh-CN");
    const epage = await ectx.newPage();
    await epage.goto(`${base}/portal/requests/by-email`);
    await review(epage, "24-zh-by-email");
    await epage.getByLabel("电子邮箱").fill("wang@example.com");
    await epage.getByLabel(/删除个人信息/).check();
    await epage.getByLabel("您居住在哪里？").selectOption("CN");
    await epage.getByRole("button", { name: "发送验证码" }).click();
    await epage.getByText("请查收邮件").waitFor();
    await review(epage, "25-zh-code");
    const codeMail = await waitFor("the code email", () => mails().reverse().find((m) => m.to.includes("wang@example.com")));
    const code = codeMail.text.match(/\b\d{6}\b/)[0];
    await epage.getByLabel("邮件中的验证码").fill(code);
    await epage.getByRole("button", { name: "确认申请" }).click();
    await epage.getByText("申请已确认").waitFor();
    await review(epage, "26-zh-verified");
    await ectx.close();

    // --- Keyboard only: the consent buttons are reachable and usable without a mouse ---
    const kctx = await newContext("en-GB");
    const kpage = await kctx.newPage();
    await kpage.goto(`${base}/portal/session?token=${subjectToken("kim")}`);
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await kpage.keyboard.press("Tab");
      reached = await kpage.evaluate(() => document.activeElement?.textContent?.includes("Give consent"));
    }
    check("a consent button is reached with Tab", reached);
    await kpage.keyboard.press("Enter");
    await kpage.getByText("You gave consent to").waitFor();
    check("and works with Enter", true);
    await kctx.close();

    // --- The consent script on the operator's own page (the demo shop) ---
    console.log("consent script");
    const visitorOf = async (context) => {
      const cookie = (await context.cookies()).find((c) => c.name === "consentry");
      return cookie && JSON.parse(decodeURIComponent(cookie.value));
    };
    const visitorCheck = async (context, purpose) => {
      const kept = await visitorOf(context);
      return (await api("GET", `/v1/subjects/visitor:${kept.v}/consents/${purpose}`, service)).body;
    };
    const banner = (page, name) => page.getByRole("region", { name });
    /** The demo page, with the layout shifts it went through recorded from the start. */
    const openDemo = async (context) => {
      const demo = await context.newPage();
      await demo.addInitScript(() => {
        window.shifts = 0;
        window.violations = [];
        new PerformanceObserver((list) => { for (const e of list.getEntries()) if (!e.hadRecentInput) window.shifts += e.value; })
          .observe({ type: "layout-shift", buffered: true });
        document.addEventListener("securitypolicyviolation", (e) => window.violations.push(e.violatedDirective));
      });
      await demo.goto(`${base}/sdk/demo`);
      return demo;
    };

    // Rejecting: nothing waiting runs, and the ledger has the refusal with its proof.
    const sctx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "en-GB" });
    let spage = await openDemo(sctx);
    await banner(spage, "Your privacy choices").waitFor();
    check("a gated script does not run before consent", await spage.evaluate(() => window.analyticsRan === undefined));
    check("the banner shifts no layout", (await spage.evaluate(() => window.shifts)) === 0);
    check("the page runs under its nonce-only CSP without a violation", (await spage.evaluate(() => window.violations.length)) === 0);
    await spage.getByRole("button", { name: "Reject all" }).click();
    await spage.getByRole("button", { name: "Privacy choices" }).first().waitFor();
    const rejected = await waitFor("the refusal in the ledger", async () => {
      const c = await visitorCheck(sctx, "analytics");
      return c.reason === "denied" && c;
    });
    check("rejecting records a refusal", rejected.allowed === false);
    check("nothing waiting ran after rejecting", await spage.evaluate(() => window.analyticsRan === undefined));
    await sctx.close();

    // Accepting runs the analytics; a returning visitor is not asked again, and the analytics
    // run with the network to Consentry cut.
    const actx = await newContext("en-GB");
    let apage = await openDemo(actx);
    await banner(apage, "Your privacy choices").waitFor();
    await review(apage, "27-banner");
    await apage.getByRole("button", { name: "Accept all" }).click();
    await apage.waitForFunction(() => window.analyticsRan === 1);
    const accepted = await waitFor("the grant in the ledger", async () => (await visitorCheck(actx, "analytics")).allowed === true);
    check("accepting records a grant", accepted);
    await actx.route("**/v1/**", (route) => route.abort());
    await apage.reload();
    await apage.waitForFunction(() => window.analyticsRan === 1);
    check("a returning visitor sees no banner", (await banner(apage, "Your privacy choices").count()) === 0);
    check("the gated script runs with no network call", true);
    await actx.close();

    // Choosing for each, by keyboard alone, in a real dialog.
    const kbctx = await newContext("en-GB");
    const kbpage = await openDemo(kbctx);
    await banner(kbpage, "Your privacy choices").waitFor();
    let onCustomise = false;
    for (let i = 0; i < 30 && !onCustomise; i++) {
      await kbpage.keyboard.press("Tab");
      onCustomise = await kbpage.evaluate(() => document.activeElement?.textContent === "Choose for each");
    }
    check("the banner's buttons are reached with Tab", onCustomise);
    await kbpage.keyboard.press("Enter");
    const dialogBox = kbpage.getByRole("dialog", { name: "Choose for each purpose" });
    await dialogBox.waitFor();
    await review(kbpage, "28-banner-dialog");
    check("nothing is ticked in advance", (await dialogBox.locator("input:checked").count()) === 0);
    check("focus moves into the dialog", await kbpage.evaluate(() => document.activeElement?.closest("[role=dialog]") !== null));
    await kbpage.keyboard.press("Space");
    for (let i = 0; i < 12; i++) {
      await kbpage.keyboard.press("Tab");
      if (await kbpage.evaluate(() => document.activeElement?.textContent === "Save my choices")) break;
    }
    check("focus stays inside the dialog", await kbpage.evaluate(() => document.activeElement?.closest("[role=dialog]") !== null));
    await kbpage.keyboard.press("Enter");
    await kbpage.waitForFunction(() => window.analyticsRan === 1);
    const chosen = await waitFor("the chosen purposes in the ledger", async () => {
      const [a, m] = [await visitorCheck(kbctx, "analytics"), await visitorCheck(kbctx, "marketing_email")];
      return a.allowed === true && m.reason === "denied" && [a, m];
    });
    check("each purpose is recorded as chosen", !!chosen);
    await kbpage.getByRole("button", { name: "Privacy choices" }).first().click();
    await dialogBox.waitFor();
    await kbpage.keyboard.press("Escape");
    check("Escape closes the dialog", (await dialogBox.count()) === 0);
    await kbctx.close();

    // A browser sending Global Privacy Control is opted out before any choice.
    const gctx2 = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "en-GB", extraHTTPHeaders: { "Sec-GPC": "1" } });
    await gctx2.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
    const gpage2 = await openDemo(gctx2);
    await gpage2.getByText("we have honoured it").waitFor();
    const optedOut = await waitFor("the GPC opt-out in the ledger", async () => {
      const m = await visitorCheck(gctx2, "marketing_email");
      return m.reason === "gpc" && m;
    });
    check("GPC opts out of the marked purpose without a banner decision", optedOut.allowed === false);
    check("and decides nothing else", (await visitorCheck(gctx2, "analytics")).reason === "no_consent");
    await gctx2.close();

    // A visitor from China reads Chinese and the Chinese policy.
    const cnctx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: "zh-CN", extraHTTPHeaders: { "X-Country": "CN" } });
    const cnpage = await openDemo(cnctx);
    await banner(cnpage, "您的隐私选择").waitFor();
    await cnpage.getByRole("button", { name: "全部接受" }).click();
    await cnpage.waitForFunction(() => window.analyticsRan === 1);
    const cn = await waitFor("the Chinese visitor's grant", async () => (await visitorCheck(cnctx, "analytics")).allowed === true);
    check("a visitor from China sees the banner in Chinese and is recorded", cn);
    await cnctx.close();

    // --- The privacy team's console ---
    console.log("console");
    const created = cli("users", "create", "--email", "officer@example.com", "--role", "admin").trim().split("\n").pop();
    const cctx = await newContext("en-GB");
    cctx.setDefaultTimeout(15000);
    const cpage = await cctx.newPage();
    await cpage.setViewportSize({ width: 1280, height: 900 });
    await cpage.goto(created.replace(/^https?:\/\/[^/]+/, base));
    await review(cpage, "30-console-setup");
    await cpage.getByLabel("New password").fill("correct horse battery staple");
    await cpage.getByLabel("The same password again").fill("correct horse battery staple");
    await cpage.getByRole("button", { name: "Set the password" }).click();
    await review(cpage, "31-console-sign-in");
    await cpage.getByLabel("Email").fill("officer@example.com");
    await cpage.getByLabel("Password").fill("correct horse battery staple");
    await cpage.getByRole("button", { name: "Sign in" }).click();
    await cpage.getByText("Set up your second factor").waitFor();
    await review(cpage, "32-console-enrol");
    const secret = (await cpage.locator("#totp-secret").textContent()).trim();
    await cpage.getByLabel("6-digit code").fill(totp(secret));
    await cpage.getByRole("button", { name: "Turn on the second factor" }).click();
    await cpage.getByRole("heading", { name: "Overview" }).waitFor();
    check("signed in with password and TOTP", new URL(cpage.url()).pathname === "/console");

    // Requests to decide: an export to approve, an erasure to reject.
    await api("PUT", "/v1/me/consents/photo_tagging", subjectToken("li"), { granted: true, policy_version: 2 });
    const exportReq = (await api("POST", "/v1/me/requests", subjectToken("li"), { type: "export" })).body.id;
    const eraseReq = (await api("POST", "/v1/me/requests", subjectToken("li"), { type: "erase", locale: "zh-CN" })).body.id;
    await cpage.goto(`${base}/console`);
    await review(cpage, "33-console-overview");
    await cpage.goto(`${base}/console/requests`);
    await review(cpage, "34-console-queue");
    await cpage.goto(`${base}/console/requests/${exportReq}`);
    await cpage.getByRole("button", { name: "Take this request" }).click();
    await review(cpage, "35-console-request");
    await cpage.getByRole("button", { name: "Approve", exact: true }).click();
    await cpage.getByText("what the person will be told").first().waitFor();
    await review(cpage, "35b-console-approve-preview");
    await cpage.getByRole("button", { name: "Approve", exact: true }).click();
    await cpage.getByText("being carried out").first().waitFor();
    check("approved from the console", (await api("GET", `/v1/admin/requests/${exportReq}`, admin)).body.request?.status === "fulfilling" ||
      (await api("GET", `/v1/admin/requests/${exportReq}`, admin)).body.status === "fulfilling");
    await cpage.goto(`${base}/console/requests/${eraseReq}`);
    await cpage.getByLabel("Reason (required)").first().fill("该账户存在未结清的订单，需保留至结清。");
    await cpage.getByRole("button", { name: "Preview the email" }).click();
    await cpage.getByText("Check the rejection email").waitFor();
    await review(cpage, "36-console-reject-preview");
    await cpage.getByRole("button", { name: "Reject and send the email" }).click();
    await waitFor("the rejection email", () => mails().find((m) => m.to.includes("li@example.com") && m.text.includes("未结清的订单")));
    check("the rejection email reached the SMTP server", true);

    // A material policy change, drafted, previewed and published in the console.
    await cpage.goto(`${base}/console/policies/new`);
    await cpage.getByLabel("Title").fill("Lumora Privacy Policy");
    await cpage.getByLabel(/In force from/).fill(new Date(Date.now() - 60000).toISOString().slice(0, 16));
    await cpage.getByLabel(/Material change/).check();
    await cpage.getByLabel("What changed").fill("Photos are now also backed up in Singapore.");
    await cpage.getByLabel("Text (Markdown)").fill("# Lumora Privacy Policy\n\nVersion 3.\n\n## Backups\n\nPhotos are backed up in Singapore.\n");
    await cpage.getByLabel("This language version prevails").check();
    await cpage.getByRole("button", { name: "Preview" }).click();
    await review(cpage, "37-console-policy-draft");
    await cpage.getByRole("button", { name: "Save the draft" }).click();
    await cpage.getByRole("button", { name: "Publish" }).click();
    await cpage.getByText("Published").first().waitFor();
    await review(cpage, "38-console-policy");
    await waitFor("a policy-changed email", () => mails().find((m) => m.text.includes("/diff?from=2&to=3")));
    check("publishing a material version emails the people who consented", true);

    // A dry-run purge, and a dead letter retried.
    await cpage.goto(`${base}/console/purges`);
    await cpage.getByRole("button", { name: "Dry run" }).click();
    await cpage.getByText("Purge run").first().waitFor();
    await waitFor("the dry run to finish", async () => { await cpage.reload(); return (await cpage.textContent("main")).includes("Completed"); });
    await review(cpage, "39-console-purge");
    hooksFail = true;
    await api("PUT", "/v1/me/consents/photo_tagging", subjectToken("li"), { granted: false, policy_version: 3 });
    await waitFor("a dead letter", async () => (await api("GET", "/v1/admin/outbox?status=dead", admin)).body.items?.length > 0);
    hooksFail = false;
    await cpage.goto(`${base}/console/outbox`);
    await review(cpage, "40-console-outbox");
    const before = jobs.filter((j) => j.type === "consent.withdrawn").length;
    await cpage.getByRole("button", { name: "Retry" }).first().click();
    await waitFor("the retried webhook", () => jobs.filter((j) => j.type === "consent.withdrawn").length > before);
    check("a retried dead letter is delivered", true);

    // Systems that hold the data: registered in the console, each reached for an erasure.
    await cpage.goto(`${base}/console/systems`);
    await review(cpage, "50-console-systems-empty");
    await cpage.getByRole("link", { name: "Register a system" }).click();
    await cpage.getByLabel("Key").fill("images");
    await cpage.getByLabel("System", { exact: true }).fill("Image storage (OSS)");
    await cpage.getByLabel(/Endpoint/).fill(`http://127.0.0.1:${hookPort}/images`);
    await cpage.getByLabel("Erasure", { exact: false }).check();
    await cpage.getByLabel("Data categories it holds").fill("photos, generated_images");
    await cpage.getByLabel("Days allowed").fill("0");
    await cpage.getByRole("button", { name: "Save" }).click();
    await cpage.getByText("a number of days from 1 to 60").first().waitFor();
    await review(cpage, "51-console-system-error");
    await cpage.getByLabel("Days allowed").fill("5");
    await cpage.getByRole("button", { name: "Save" }).click();
    await cpage.getByText("it is shown this once").waitFor();
    await review(cpage, "52-console-system-secret");
    const systemSecret = (await cpage.locator("code.secret").textContent()).trim();
    check("a system's signing secret is shown once", systemSecret.startsWith("whsec_"));
    await cpage.goto(`${base}/console/systems/new`);
    await cpage.getByLabel("Key").fill("training");
    await cpage.getByLabel("System", { exact: true }).fill("Training cluster");
    await cpage.getByLabel("Erasure", { exact: false }).check();
    await cpage.getByLabel("Data categories it holds").fill("training_data");
    await cpage.getByLabel("Days allowed").fill("10");
    await cpage.getByRole("button", { name: "Save" }).click();
    await cpage.getByRole("heading", { name: "Systems" }).waitFor();
    await review(cpage, "53-console-systems");
    await event("subject.upserted", { external_id: "mia", email: "mia@example.com", locale: "en", jurisdiction: "FR" });
    const sysReq = (await api("POST", "/v1/me/requests", subjectToken("mia"), { type: "erase" })).body.id;
    await api("POST", `/v1/admin/requests/${sysReq}/approve`, admin, {});
    const imagesJob = await waitFor("the image store's job", () => jobs.find((j) => j.type === "fulfilment.requested" && j.data.request_id === sysReq && j.data.system === "images"));
    check("each system gets its own job", !!await waitFor("the training job", () => jobs.find((j) => j.data?.request_id === sysReq && j.data.system === "training")));
    const report = JSON.stringify({ status: "done", evidence: { counts: { photos: 12 }, reference: "oss-del-881" } });
    const rid = `msg_${crypto.randomUUID()}`;
    const rts = Math.floor(Date.now() / 1000).toString();
    const rkey = Buffer.from(systemSecret.slice("whsec_".length), "base64");
    const rsig = crypto.createHmac("sha256", rkey).update(`${rid}.${rts}.${report}`).digest("base64");
    const reported = await fetch(`${base}/v1/systems/images/fulfilments/${imagesJob.data.fulfilment_id}`, {
      method: "POST", headers: { "content-type": "application/json", "webhook-id": rid, "webhook-timestamp": rts, "webhook-signature": `v1,${rsig}` }, body: report,
    });
    check("a system reports on its own signed path", reported.status === 200);
    await cpage.goto(`${base}/console/requests/${sysReq}`);
    await cpage.locator("#systems").scrollIntoViewIfNeeded();
    await review(cpage, "54-console-request-systems");
    check("the request shows each system's status", (await cpage.textContent("main")).includes("Waiting for the system"));
    await cpage.getByText("Not applicable").first().click();
    await cpage.getByLabel("Why this system has nothing to do for this request").fill("Mia never opted in to model training.");
    await cpage.getByRole("button", { name: "Not applicable" }).click();
    await cpage.getByText("Nothing to do there").first().waitFor();
    await review(cpage, "55-console-request-systems-done");
    check("the request completes once every system is settled", (await api("GET", `/v1/admin/requests/${sysReq}`, admin)).body.status === "completed");

    for (const [path, name] of [["/console/subjects?q=li@example.com", "41-console-subject"], ["/console/register", "42-console-register"],
      ["/console/purposes", "43-console-purposes"], ["/console/retention", "44-console-retention"], ["/console/audit", "45-console-audit"],
      ["/console/keys", "46-console-keys"], ["/console/account", "47-console-account"], ["/console/policies", "48-console-policies"],
      ["/console?lang=zh-CN", "49-console-overview-zh"]]) {
      await cpage.goto(base + path);
      await review(cpage, name);
    }
    await cctx.close();
  } finally {
    await browser.close();
    hooks.close();
  }
}

try {
  await main();
} catch (e) {
  failures.push(`the suite stopped: ${e.stack || e}`);
  console.log(e);
} finally {
  for (const child of children) child.kill();
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch (e) {
      console.log(`cleanup failed: ${e}`);
    }
  }
}
for (const f of failures) console.log("FAIL:", f);
console.log(`browser suite: ${checks - failures.length}/${checks} checks hold; screenshots in target/browser/`);
process.exit(failures.length ? 1 : 0);
