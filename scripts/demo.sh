#!/usr/bin/env bash
# The main job, for now: generate a realistic data set (20k stakeholders, 300k contact moments over
# a month; STAKEHOLDERS=100000 MOMENTS=1000000 for the full-size run) and score it against the
# sample organisation, rules/acme.toml. Prints the top of each leaderboard and the challenges;
# effects of every moment go to target/demo/effects.jsonl, the summary to target/demo/summary.json.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh"
cargo build --release --locked -p plaudit-engine --bin plaudit
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/demo
mkdir -p "$OUT"
PLAUDIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/plaudit
"$PLAUDIT" check rules/acme.toml
echo "demo: generating $OUT/moments.jsonl"
"$PLAUDIT" gen --stakeholders "${STAKEHOLDERS:-20000}" --moments "${MOMENTS:-300000}" --days 30 --seed 42 >"$OUT/moments.jsonl"
echo "demo: scoring (effects -> $OUT/effects.jsonl)"
time "$PLAUDIT" score --rules rules/acme.toml "$OUT/moments.jsonl" >"$OUT/effects.jsonl"
echo "demo: $(wc -l <"$OUT/effects.jsonl") effects; the summary:"
"$PLAUDIT" score --rules rules/acme.toml --summary --top 5 "$OUT/moments.jsonl" >"$OUT/summary.json"
python3 - "$OUT/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"organisation {s['organisation']}: {s['stakeholders']} stakeholders")
for b in s["leaderboards"]:
    print(f"\n{b['board']} ({b['metric']}, ties {b['ties']}{', window ' + b['window'] if b.get('window') else ''}): {b['total']} ranked")
    for r in b["rows"]:
        print(f"  {r['rank']:>3}. {r['stakeholder']:<10} {r['value']}")
print("\nchallenges:")
for c in s["challenges"]:
    print(f"  {c['id']:<22} {c['scope']:<10} {c['window']:<6} {c['status']}")
PY
