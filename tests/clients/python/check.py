"""A product team's Python client, generated from the served /openapi.json by
openapi-python-client, used against a real server (tests/clients/run.sh sets PYTHONPATH to the
generated package, PLAUDIT_URL and PLAUDIT_KEY): every operation generated; a batch, a
profile, a leaderboard and the feed read through typed fields; the rule set as JSON; a what-if
of a change to it."""

import datetime
import json
import os
import pathlib
import re
import urllib.request

import plaudit_client
from plaudit_client import AuthenticatedClient
from plaudit_client.api.effects import get_effects
from plaudit_client.api.leaderboards import get_leaderboard
from plaudit_client.api.moments import post_moments
from plaudit_client.api.rules import get_rules, simulate_rules
from plaudit_client.api.stakeholders import get_profile
from plaudit_client.models import (
    Diff,
    FeedPage,
    Ingested,
    LeaderboardPage,
    Moment,
    PointsAwardedFeedItem,
    Profile,
    ProfileProfile,
    RuleSet,
    StakeholderProfile,
    StakeholderRow,
)

URL = os.environ["PLAUDIT_URL"]
client = AuthenticatedClient(base_url=URL, token=os.environ["PLAUDIT_KEY"], raise_on_unexpected_status=True)


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"check failed: {what}")


# Every operation of the description has its module: nothing was dropped.
with urllib.request.urlopen(f"{URL}/openapi.json") as answer:
    spec = json.load(answer)
generated = {p.stem for p in pathlib.Path(plaudit_client.__file__).parent.glob("api/*/*.py")}
for path, operations in spec["paths"].items():
    for method, operation in operations.items():
        module = re.sub(r"(?<!^)(?=[A-Z])", "_", operation["operationId"]).lower()
        check(module in generated, f"{method.upper()} {path} ({operation['operationId']}) was generated")


def at(day: int, hour: int) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, tzinfo=datetime.timezone.utc)


batch = [
    Profile(profile=ProfileProfile(id="py-ann", kind="employee", team="sales", name="Ann")),
    Moment(id="py-1", stakeholder="py-ann", counterpart="py-bob", kind="meetup", channel="event", at=at(2, 10)),
    Moment(id="py-2", stakeholder="py-ann", counterpart="py-bob", kind="answer", channel="forum", at=at(2, 11), value=5),
    Moment(id="py-3", stakeholder="py-ann", kind="referral", channel="email", at=at(3, 9)),
]
sent = post_moments.sync(org="acme", client=client, body=batch)
check(isinstance(sent, Ingested), f"the batch is accepted: {sent}")
check((sent.accepted, sent.duplicates) == (4, 0), f"four records stored: {sent}")
check(len(sent.effects) > 0, "the answer says what was earned")
again = post_moments.sync(org="acme", client=client, body=batch[1:])
check(isinstance(again, Ingested) and (again.accepted, again.duplicates) == (0, 3), f"sent again: duplicates: {again}")

ann = get_profile.sync(org="acme", id="py-ann", client=client)
check(isinstance(ann, StakeholderProfile), f"a typed profile: {ann}")
xp = ann.currencies["xp"]
check(ann.id == "py-ann" and ann.team == "sales" and isinstance(xp, int) and xp > 0, f"typed fields: {ann}")

page = get_leaderboard.sync(org="acme", board="xp", client=client, limit=50)
check(isinstance(page, LeaderboardPage), f"a typed board: {page}")
rows = [r for r in page.rows if isinstance(r, StakeholderRow) and r.stakeholder == "py-ann"]
check(len(rows) == 1 and rows[0].value == xp and rows[0].rank >= 1, f"py-ann ranked with their xp: {page.rows}")

feed = get_effects.sync(org="acme", client=client, after=0, limit=1000)
check(isinstance(feed, FeedPage), f"a typed feed page: {feed}")
mine = [e for e in feed.effects if e.moment in ("py-1", "py-2", "py-3")]
check(len(mine) == len(sent.effects), "the feed holds what the answer said")
points = [e for e in mine if isinstance(e, PointsAwardedFeedItem)]
check(all(e.amount > 0 for e in points), f"points through typed fields: {points}")
check(sum(e.amount for e in points if e.stakeholder == "py-ann" and e.currency == "xp") == xp, "py-ann's xp adds up")
check(feed.next_ <= feed.latest, "a cursor")

# The rule set as JSON (a generated client sends `Accept: */*`, which the server answers in the
# format of the last publication: ask for JSON), typed; a what-if of doubled awards.
rules = get_rules.sync(org="acme", client=client.with_headers({"Accept": "application/json"}))
check(isinstance(rules, RuleSet), f"the rule set as a typed RuleSet: {rules}")
check(rules.organisation.id == "acme" and len(rules.rule) > 0, "its sections read through typed fields")
for rule in rules.rule:
    for award in rule.award:
        if isinstance(award.amount, int):
            award.amount *= 2
diff = simulate_rules.sync(org="acme", client=client, body=rules)
check(isinstance(diff, Diff), f"a typed diff: {diff}")
check(diff.records > 0 and diff.changed > 0, f"doubled awards change balances: {diff}")

print("python client: ok")
