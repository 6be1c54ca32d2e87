// The console in a real browser (Debian's headless Chromium, driven by playwright-core) against a
// real server: a fixture of known moments is sent to acme, then a community manager signs in,
// reads the overview and the audit (their figures equal the insights API's), tunes a challenge
// (the preview's numbers equal `POST rules/simulate` of the same candidate), publishes, sees the
// new version and goal, rolls back, meets a rule-set error at its field; a wrong key, another
// organisation's key and a change without its CSRF token are refused. Every page is loaded at
// 390 and 1440 px wide, with no error in the browser's console, and saved as a screenshot under
// SCREENSHOTS. run.sh starts the server and sets PLAUDIT_URL, PLAUDIT_KEY, PLAUDIT_ADMIN_KEY.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.PLAUDIT_URL;
const key = process.env.PLAUDIT_KEY;
const admin = process.env.PLAUDIT_ADMIN_KEY;
const shots = process.env.SCREENSHOTS ?? "target/console-screenshots";
assert.ok(base && key && admin, "PLAUDIT_URL, PLAUDIT_KEY and PLAUDIT_ADMIN_KEY are needed");
mkdirSync(shots, { recursive: true });

async function api(method, path, body, withKey = key) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${withKey}`, "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// The fixture: 12 people in 4 teams over three weeks of March 2026, meeting across teams.
const teams = ["sales", "support", "engineering", "partners"];
const people = Array.from({ length: 12 }, (_, i) => ({ id: `p${i}`, team: teams[i % 4], kind: i % 3 ? "employee" : "partner" }));
const kinds = ["meetup", "answer", "introduction", "post"];
const channels = ["event", "forum", "email"];
const records = people.map((p) => ({ profile: { id: p.id, kind: p.kind, team: p.team, name: `Person ${p.id}` } }));
let n = 0;
for (let day = 2; day <= 20; day++) {
  for (let k = 0; k < 6; k++) {
    const a = people[(day * 7 + k * 5) % 12], b = people[(day * 3 + k * 11 + 1) % 12];
    if (a.id === b.id) continue;
    const hour = String(8 + k).padStart(2, "0");
    records.push({ id: `c${n++}`, stakeholder: a.id, counterpart: b.id, kind: kinds[(day + k) % 4], channel: channels[k % 3],
      at: `2026-03-${String(day).padStart(2, "0")}T${hour}:00:00Z` });
  }
}
const sent = await api("POST", "/v1/orgs/acme/moments?effects=false", records);
assert.equal(sent.status, 201, JSON.stringify(sent.body));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const errors = [];
async function newPage(width) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return page;
}
async function signIn(page, org, withKey) {
  await page.goto(base + "/console/");
  await page.fill("#org", org);
  await page.fill("#key", withKey);
  await Promise.all([page.waitForLoadState("load"), page.click("form.signin button")]);
}
// The numbers of a chart's table, by row label then column.
async function table(page, id) {
  return page.$$eval(`#${id} tbody tr`, (rows) => rows.map((r) => ({
    label: r.querySelector("th").textContent.trim(),
    values: [...r.querySelectorAll("td")].map((td) => Number(td.dataset.value)),
  })));
}

try {
  const page = await newPage(1440);

  // A wrong key, a scoped key and an unknown organisation are refused alike.
  const scoped = await api("POST", "/v1/orgs/acme/keys", { name: "read", scope: "read" });
  for (const [org, k] of [["acme", "pk_wrong"], ["acme", scoped.body.key], ["nobody", key]]) {
    await signIn(page, org, k);
    assert.match(await page.textContent("#problem"), /not this organisation's own key/, `${org} with ${k.slice(0, 6)}…`);
    assert.equal(await page.$("nav[aria-label=Sections]"), null, "not signed in");
  }

  await signIn(page, "acme", key);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "plaudit_console");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict" && session.expires > Date.now() / 1000, JSON.stringify(cookies));
  assert.ok(!(await page.content()).includes(key), "the key is never in a page");
  const head = await page.request.get(base + "/console/");
  assert.match(head.headers()["content-security-policy"], /default-src 'none'/);
  assert.equal(head.headers()["x-frame-options"], "DENY");

  // Keyboard first: the first Tab reaches the skip link.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.className), "skip");

  // Overview: charts drawn, figures those of the API.
  assert.ok((await page.$$("svg polyline")).length >= 4, "line charts drawn");
  assert.ok((await page.$$("svg rect.bar")).length > 0, "bar charts drawn");
  const activity = (await api("GET", "/v1/orgs/acme/insights/activity")).body;
  const moments = await table(page, "moments-data");
  assert.deepEqual(moments.map((r) => r.label), activity.weeks.map((w) => w.week));
  assert.deepEqual(moments.map((r) => r.values[0]), activity.weeks.map((w) => w.moments));
  const stakeholders = await table(page, "stakeholders-data");
  assert.deepEqual(stakeholders.map((r) => r.values), activity.weeks.map((w) => [w.active, w.new_stakeholders]));
  const goals = (await api("GET", "/v1/orgs/acme/insights/goals")).body;
  const goal0 = await table(page, "goal-0-data");
  assert.deepEqual(goal0.map((r) => r.values[0]), goals.goals[0].weeks.map((w) => w.actual));

  // Audit: the heatmap's cells and the bridges matrix are the API's.
  await page.goto(base + "/console/audit");
  const byTeam = (await api("GET", "/v1/orgs/acme/insights/activity?by=team")).body;
  for (const w of byTeam.weeks) {
    for (const g of w.groups) {
      const cell = await page.getAttribute(`#heatmap tr[data-team="${g.name}"] td[data-week="${w.week}"]`, "data-value");
      assert.equal(Number(cell), g.moments, `${g.name} ${w.week}`);
    }
  }
  const week = "2026-03-09";
  await page.selectOption("#week", week);
  await Promise.all([page.waitForLoadState("load"), page.click("form.filter button")]);
  const bridges = (await api("GET", `/v1/orgs/acme/insights/bridges?week=${week}`)).body;
  assert.ok(bridges.matrix.length > 0);
  for (const b of bridges.matrix) {
    const cell = await page.$(`#bridges tr[data-team="${b.team}"] td[data-counterpart="${b.counterpart_team}"]`);
    assert.equal(Number(await cell.getAttribute("data-value")), b.moments);
    assert.equal(await cell.getAttribute("data-new"), String(b.new));
  }

  // Tune: bridge-week's goal from 5 to 2 moments; the preview is the API's what-if.
  await page.goto(base + "/console/tune");
  const goalField = "#f-challenge-0-goal-moments";
  assert.equal(await page.inputValue(goalField), "5");
  await page.fill(goalField, "2");
  await page.fill("#f-challenge-0-goal-distinct_teams", "1");
  await Promise.all([page.waitForLoadState("load"), page.click("form.tune button[type=submit]")]);
  const candidate = JSON.parse(await page.getAttribute("form.publish input[name=candidate]", "value"));
  assert.equal(candidate.challenge[0].goal.moments, 2);
  const whatIf = (await api("POST", "/v1/orgs/acme/rules/simulate?limit=20", candidate)).body;
  for (const field of ["records", "stakeholders", "changed", "badges_gained", "badges_lost", "level_changes", "rank_changes"]) {
    const shown = await page.getAttribute(`#diff-summary dd[data-key=${field}]`, "data-key");
    const text = (await page.textContent(`#diff-summary dd[data-key=${field}]`)).replace(/\s/g, "");
    assert.equal(shown, field);
    assert.equal(Number(text), whatIf[field], field);
  }
  const completions = await table(page, "completions-data");
  for (const row of completions) assert.deepEqual(row.values, whatIf.completions[row.label], row.label);
  assert.deepEqual(completions.map((r) => r.label).sort(), Object.keys(whatIf.completions).sort());
  assert.ok(whatIf.changed > 0 && whatIf.completions["bridge-week"][1] > whatIf.completions["bridge-week"][0], JSON.stringify(whatIf));
  const affected = await page.$$eval("#affected tbody tr", (rows) => rows.map((r) => r.dataset.stakeholder));
  assert.deepEqual(affected, whatIf.details.map((d) => d.id), "the most affected, as the what-if lists them");
  await page.screenshot({ path: `${shots}/tune-preview-1440.png`, fullPage: false });

  // Publish: version 2, the goal in force is 2; roll back: version 3, the goal is 5 again.
  await Promise.all([page.waitForLoadState("load"), page.click("form.publish button")]);
  assert.match(await page.textContent(".notice"), /Published version 2/);
  assert.deepEqual((await api("GET", "/v1/orgs/acme/challenges")).body.find((c) => c.id === "bridge-week").goal,
    { moments: 2, distinct_teams: 1, distinct_counterparts: 0 });
  assert.ok((await page.textContent("#changes")).includes("challenge[0].goal.moments"), "the change between 1 and 2");
  await Promise.all([page.waitForLoadState("load"), page.click("#versions tr[data-version='1'] button")]);
  assert.match(await page.textContent(".notice"), /Published version 3/);
  assert.equal((await api("GET", "/v1/orgs/acme/challenges")).body.find((c) => c.id === "bridge-week").goal.moments, 5);
  await page.goto(base + "/console/tune");
  assert.equal(await page.inputValue(goalField), "5");

  // A rule-set error is shown at the field it names.
  await page.fill(goalField, "99999999999");
  await Promise.all([page.waitForLoadState("load"), page.click("form.tune button[type=submit]")]);
  assert.match(await page.textContent("#f-challenge-0-goal-moments-error"), /u32|invalid/);
  assert.equal(await page.getAttribute(goalField, "aria-invalid"), "true");
  assert.equal((await api("GET", "/v1/orgs/acme/rules/versions")).body.current, 3, "nothing published");

  // A change without its CSRF token, or from another site, is refused.
  const noToken = await page.request.post(base + "/console/tune/publish", { form: { candidate: JSON.stringify(candidate) } });
  assert.equal(noToken.status(), 403);
  const csrf = await page.getAttribute("form.signout input[name=csrf]", "value");
  const elsewhere = await page.request.post(base + "/console/tune/publish", {
    form: { csrf, candidate: JSON.stringify(candidate) }, headers: { Origin: "http://evil.example" },
  });
  assert.equal(elsewhere.status(), 403);
  assert.equal((await api("GET", "/v1/orgs/acme/rules/versions")).body.current, 3, "nothing published");

  // A stakeholder's export, downloaded from their page, is the API's.
  await page.goto(base + "/console/stakeholders/p1");
  const href = await page.getAttribute("a[download]", "href");
  const download = await page.request.get(base + href);
  assert.equal(download.status(), 200);
  assert.match(download.headers()["content-disposition"], /attachment/);
  assert.deepEqual(await download.json(), (await api("GET", "/v1/orgs/acme/stakeholders/p1/export")).body);

  // Apply to history: the preview first, changing nothing.
  await page.goto(base + "/console/versions");
  await Promise.all([page.waitForLoadState("load"), page.click("form[action='/console/versions/apply'] button")]);
  assert.ok(await page.$("#diff-summary"), "the application's preview");

  // Every page, narrow and wide, with no error in the browser's console (the refusals above
  // logged theirs: a browser logs every 4xx page it loads).
  errors.length = 0;
  const pages = ["", "champions", "audit", "challenges", "tune", "versions", "stakeholders/p1", "leaderboards", "plugins"];
  for (const width of [390, 1440]) {
    const p = width === 1440 ? page : await newPage(width);
    if (width !== 1440) await signIn(p, "acme", key);
    for (const path of pages) {
      const r = await p.goto(base + "/console/" + path);
      assert.equal(r.status(), 200, path);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${path || "overview"} at ${width}px is ${overflow}px too wide`);
      assert.ok(await p.$("main h1"), path);
      await p.screenshot({ path: `${shots}/${(path || "overview").replace("/", "-")}-${width}.png`, fullPage: false });
    }
  }
  assert.deepEqual(errors, [], "no errors in the browser's console");
  const champion = await page.goto(base + "/console/champions");
  assert.equal(champion.status(), 200);
  const first = await page.$("#top tbody tr a");
  if (first) {
    await Promise.all([page.waitForLoadState("load"), first.click()]);
    assert.match(page.url(), /\/console\/stakeholders\//, "a champion opens the stakeholder");
  }

  // Another organisation's key sees nothing of acme's.
  const globex = await api("POST", "/v1/orgs", { id: "globex", timezone: "UTC" }, admin);
  assert.equal(globex.status, 201, JSON.stringify(globex.body));
  const other = await newPage(1440);
  await signIn(other, "globex", globex.body.key);
  assert.equal((await other.goto(base + "/console/stakeholders/p1")).status(), 404);
  assert.ok(!(await other.content()).includes("Person p1"));

  // Sign-out ends the session: the cookie no longer opens a page.
  await Promise.all([page.waitForLoadState("load"), page.click("form.signout button")]);
  assert.ok(await page.$("form.signin"), "back at sign-in");
  const stale = await fetch(base + "/console/champions", { headers: { Cookie: `plaudit_console=${session.value}` }, redirect: "manual" });
  assert.equal(stale.status, 303);

  console.log(`browser: the console's flows: ok (screenshots in ${shots})`);
} finally {
  await browser.close();
}
