// A page on another origin calls the API in a real browser (Debian's headless Chromium, driven by
// playwright-core): the organisation lists the page's origin, so its `fetch` with a scoped key
// passes the browser's CORS preflight and reads the answer; a page on an origin not listed is
// stopped by the browser; an `EventSource` opened with a feed token (no header) streams the
// stakeholder's own effects only. run.sh starts the server and sets PLAUDIT_URL, PLAUDIT_KEY
// and CHROMIUM.
import assert from "node:assert/strict";
import http from "node:http";
import { chromium } from "playwright-core";

const api = process.env.PLAUDIT_URL;
const own = process.env.PLAUDIT_KEY;
assert.ok(api && own, "PLAUDIT_URL and PLAUDIT_KEY are needed");

async function call(method, path, key, body) {
  const response = await fetch(api + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const moment = (id, who, withWhom) => ({
  id, stakeholder: who, counterpart: withWhom, kind: "answer", channel: "forum", at: "2026-03-02T10:00:00Z",
});

// Two pages' origins on this machine, neither the API's: one allowed, one not.
function pageServer() {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>partner app</title><p>partner app</p>");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}
const allowedServer = await pageServer();
const otherServer = await pageServer();
// `localhost` and `127.0.0.1` are different origins from the API's `127.0.0.1:<port>`.
const allowed = `http://localhost:${allowedServer.address().port}`;
const other = `http://localhost:${otherServer.address().port}`;

let browser;
try {
  assert.equal((await call("POST", "/v1/orgs/acme/moments", own, [moment("b1", "ann", "bob")])).status, 201);
  const set = await call("PUT", "/v1/orgs/acme/cors", own, { origins: [allowed] });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  const read = await call("POST", "/v1/orgs/acme/keys", own, { name: "partner app", scope: "read" });
  const ann = await call("POST", "/v1/orgs/acme/keys", own, { name: "ann's app", scope: "stakeholder", stakeholder: "ann" });
  const ingest = await call("POST", "/v1/orgs/acme/keys", own, { name: "backend", scope: "ingest" });
  assert.equal(read.status, 201);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

  // From the allowed origin: a preflighted read with a scoped key, and its answer read.
  await page.goto(allowed);
  const profile = await page.evaluate(async ([api, key]) => {
    const r = await fetch(`${api}/v1/orgs/acme/stakeholders/ann`, { headers: { Authorization: `Bearer ${key}` } });
    return { status: r.status, body: await r.json() };
  }, [api, read.body.key]);
  assert.equal(profile.status, 200);
  assert.equal(profile.body.id, "ann");
  // An error is readable too: the page can tell the user why.
  const refused = await page.evaluate(async (api) => {
    const r = await fetch(`${api}/v1/orgs/acme/stakeholders/ann`, { headers: { Authorization: "Bearer nope" } });
    return { status: r.status, body: await r.json() };
  }, api);
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, "unauthorized");

  // The stream, as a browser opens it: a token from the stakeholder's key, in the URL.
  const token = await page.evaluate(async ([api, key]) => {
    const r = await fetch(`${api}/v1/orgs/acme/effects/tokens`, { method: "POST", headers: { Authorization: `Bearer ${key}` } });
    return r.json();
  }, [api, ann.body.key]);
  assert.ok(token.stream.includes("token=ft_"), JSON.stringify(token));
  await page.evaluate(([api, stream]) => {
    window.received = [];
    window.source = new EventSource(api + stream);
    window.source.addEventListener("effect", (e) => window.received.push(JSON.parse(e.data)));
    return new Promise((resolve, reject) => {
      window.source.onopen = () => resolve();
      window.source.onerror = () => reject(new Error("the stream did not open"));
    });
  }, [api, token.stream]);
  for (const [id, who] of [["b2", "bob"], ["b3", "ann"]]) {
    assert.equal((await call("POST", "/v1/orgs/acme/moments", ingest.body.key, [moment(id, who, "carl")])).status, 201);
  }
  await page.waitForFunction(() => window.received.length > 0, null, { timeout: 30_000 });
  await page.waitForTimeout(300); // anything of bob's would have come before ann's
  const received = await page.evaluate(() => window.received);
  assert.ok(received.every((e) => e.stakeholder === "ann"), JSON.stringify(received));
  assert.ok(received.some((e) => e.moment === "b3"), JSON.stringify(received));
  await page.evaluate(() => window.source.close());
  // The one error logged is the 401 asked for above.
  const unexpected = consoleErrors.filter((m) => !m.includes("status of 401"));
  assert.deepEqual(unexpected, [], "no other errors in the allowed page's console");
  assert.equal(consoleErrors.length, 1, JSON.stringify(consoleErrors));

  // From an origin not listed: the browser stops the call (no CORS header came back).
  await page.goto(other);
  const blocked = await page.evaluate(async ([api, key]) => {
    try {
      await fetch(`${api}/v1/orgs/acme/stakeholders/ann`, { headers: { Authorization: `Bearer ${key}` } });
      return "read";
    } catch (e) {
      return `blocked: ${e.name}`;
    }
  }, [api, read.body.key]);
  assert.equal(blocked, "blocked: TypeError");
  console.log("browser: cross-origin calls and the feed token's stream: ok");
} finally {
  await browser?.close();
  allowedServer.close();
  otherServer.close();
}
