// A product team's TypeScript client, generated from the served /openapi.json by
// openapi-typescript and driven through openapi-fetch against a real server: a batch, a
// profile, a leaderboard and the feed with typed fields, a what-if, the rule set as JSON.
// `tsc --strict` must accept it (the types are the point) and every check must hold when run.
import createClient from "openapi-fetch";
import type { components, paths } from "./plaudit.js";

type FeedItem = components["schemas"]["FeedItem"];

const base = process.env.PLAUDIT_URL;
const key = process.env.PLAUDIT_KEY;
if (!base || !key) throw new Error("PLAUDIT_URL and PLAUDIT_KEY are needed");

function check(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const plaudit = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${key}` } });
const org = { org: "acme" };

const sent = await plaudit.POST("/v1/orgs/{org}/moments", {
  params: { path: org },
  body: [
    { profile: { id: "ts-cat", kind: "partner", team: "partners", name: "Cat" } },
    { id: "ts-1", stakeholder: "ts-cat", counterpart: "ts-dan", kind: "introduction", channel: "email", at: "2026-03-04T09:00:00Z" },
    { id: "ts-2", stakeholder: "ts-cat", kind: "post", channel: "forum", at: "2026-03-04T10:00:00Z" },
  ],
});
if (sent.error) throw new Error(`${sent.error.error.code}: ${sent.error.error.message}`);
check(sent.data.accepted === 3 && sent.data.duplicates === 0, `a new batch is accepted: ${JSON.stringify(sent.data)}`);
const immediate: components["schemas"]["Effect"][] = sent.data.effects ?? [];
check(immediate.length > 0, "the answer carries what was earned");

const again = await plaudit.POST("/v1/orgs/{org}/moments", {
  params: { path: org },
  body: [{ id: "ts-2", stakeholder: "ts-cat", kind: "post", channel: "forum", at: "2026-03-04T10:00:00Z" }],
});
check(again.data?.duplicates === 1 && again.data.accepted === 0, "the same moment again is a duplicate");

const { data: cat } = await plaudit.GET("/v1/orgs/{org}/stakeholders/{id}", { params: { path: { ...org, id: "ts-cat" } } });
check(cat, "the profile is read");
const xp: number | undefined = cat.currencies["xp"];
check(cat.id === "ts-cat" && cat.team === "partners" && typeof xp === "number" && xp > 0, `typed profile: ${JSON.stringify(cat)}`);

const { data: board } = await plaudit.GET("/v1/orgs/{org}/leaderboards/{board}", {
  params: { path: { ...org, board: "xp" }, query: { limit: 50 } },
});
check(board, "the board is read");
const ranked = board.rows.find((row) => "stakeholder" in row && row.stakeholder === "ts-cat");
check(ranked && ranked.rank >= 1 && ranked.value === xp, `ts-cat on the board with their xp: ${JSON.stringify(board.rows)}`);

// Each effect type is its own type, told apart by `type`.
function describe(e: FeedItem): string | undefined {
  switch (e.type) {
    case "points_awarded":
      return `${e.stakeholder} +${e.amount} ${e.currency} (now ${e.balance})`;
    case "badge_earned":
      return `${e.stakeholder} earned ${e.badge}`;
    case "level_reached":
      return `${e.stakeholder} reached ${e.level}`;
    default:
      return undefined;
  }
}
const { data: feed, error } = await plaudit.GET("/v1/orgs/{org}/effects", { params: { path: org, query: { after: 0, limit: 1000 } } });
if (error) throw new Error(error.error.message);
check(typeof feed !== "string", "a page, not a stream");
const mine = feed.effects.filter((e) => e.moment === "ts-1" || e.moment === "ts-2");
check(mine.length === immediate.length, "the feed holds what the answer said");
check(mine.some((e) => describe(e)?.includes("+")), "points read through their typed fields");
check(feed.next <= feed.latest, "a cursor");

// A what-if of a changed rule set, sent as JSON, answered with a typed diff.
const { data: rules } = await plaudit.GET("/v1/orgs/{org}/rules", { params: { path: org }, headers: { Accept: "application/json" }, parseAs: "json" });
check(rules && typeof rules === "object" && "organisation" in rules, `the rule set as JSON: ${JSON.stringify(rules).slice(0, 200)}`);
const candidate: components["schemas"]["RuleSet"] = structuredClone(rules);
const doubled = (candidate.rule ?? []).map((r) => ({
  ...r,
  award: r.award.map((a) => ({ ...a, amount: typeof a.amount === "number" ? a.amount * 2 : a.amount })),
}));
const { data: diff, error: refused } = await plaudit.POST("/v1/orgs/{org}/rules/simulate", { params: { path: org }, body: { ...candidate, rule: doubled } });
if (refused) throw new Error(refused.error.message);
check(diff.records > 0 && diff.changed > 0, `a what-if with doubled awards changes balances: ${JSON.stringify(diff).slice(0, 300)}`);

console.log("typescript client: ok");
