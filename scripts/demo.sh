#!/usr/bin/env bash
# The main job: the HTTP server with demo organisations on the embedded store.
#
# On first run: sets up, builds (the example plugins too), creates an organisation per
# rules/*.toml in target/demo/data with the example plugins installed in acme (printing each
# API key once; they are also kept in target/demo/keys.txt), imports a generated
# month of contact moments into `acme` (20k stakeholders, 300k moments; STAKEHOLDERS=100000
# MOMENTS=1000000 for the full-size run) through the durable log, prints the top of its
# leaderboards, and serves on 127.0.0.1:8080 (LISTEN=ADDR to change) until Ctrl-C.
# Later runs reuse the data directory (delete target/demo to start over).
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh"
# The example plugins, which the demo installs into acme.
"$ROOT/scripts/build-plugins.sh"
cargo build --release --locked -p plaudit --bin plaudit
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/demo
DATA=$OUT/data
PLAUDIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/plaudit
mkdir -p "$OUT"
# The admin key (POST /v1/orgs): PLAUDIT_ADMIN_KEY if set, else one made on the first run.
if [[ -z ${PLAUDIT_ADMIN_KEY:-} ]]; then
    [[ -s $OUT/admin.key ]] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/admin.key"
    PLAUDIT_ADMIN_KEY=$(cat "$OUT/admin.key")
fi
export PLAUDIT_ADMIN_KEY
if [[ ! -d $DATA/orgs ]]; then
    for rules in rules/*.toml; do
        "$PLAUDIT" check "$rules" >/dev/null
    done
    # Create the organisations (the server's --demo does it; keys are printed once).
    "$PLAUDIT" serve --data "$DATA" --demo rules --listen 127.0.0.1:0 >"$OUT/keys.txt" &
    SERVER=$!
    for _ in $(seq 100); do grep -q "^listening on" "$OUT/keys.txt" && break; sleep 0.1; done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    sed -i '/^listening on/d; /^console:/d' "$OUT/keys.txt"
    echo "demo: generating $OUT/moments.jsonl"
    "$PLAUDIT" gen --stakeholders "${STAKEHOLDERS:-20000}" --moments "${MOMENTS:-300000}" --days 30 --seed 42 >"$OUT/moments.jsonl"
    echo "demo: importing it into acme's durable log"
    "$PLAUDIT" import --data "$DATA" --org acme "$OUT/moments.jsonl"
fi
"$PLAUDIT" replay --data "$DATA" --org acme --summary --top 5 >"$OUT/summary.json"
python3 - "$OUT/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"organisation {s['organisation']}: {s['stakeholders']} stakeholders")
for b in s["leaderboards"]:
    print(f"\n{b['board']} ({b['metric']}, ties {b['ties']}{', window ' + b['window'] if b.get('window') else ''}): {b['total']} ranked")
    for r in b["rows"]:
        print(f"  {r['rank']:>3}. {r['stakeholder']:<10} {r['value']}")
PY
echo
cat "$OUT/keys.txt"
KEY=$(sed -n 's/^demo: organisation acme .* key \(.*\)$/\1/p' "$OUT/keys.txt")
LISTEN=${LISTEN:-127.0.0.1:8080}
cat <<TRY

The console, for community managers: http://$LISTEN/console/
  sign in with organisation "acme" and its key ($KEY)

Try it (the acme key is in $OUT/keys.txt, the admin key in $OUT/admin.key; docs/guide.md's
"HTTP API" section walks through tuning a challenge, plugins and creating an organisation):
  curl -s http://$LISTEN/v1/orgs/acme/leaderboards/xp?limit=5 -H "Authorization: Bearer $KEY"
  curl -s http://$LISTEN/v1/orgs/acme/stakeholders/s0 -H "Authorization: Bearer $KEY"
  curl -s -XPOST http://$LISTEN/v1/orgs/acme/moments -H "Authorization: Bearer $KEY" \\
    -d '{"id": "hello-1", "stakeholder": "s0", "counterpart": "s1", "kind": "meetup", "channel": "event", "at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}'
  curl -s http://$LISTEN/v1/orgs/acme/rules -H "Authorization: Bearer $KEY"
  curl -s -XPOST http://$LISTEN/v1/orgs -H "Authorization: Bearer \$(cat $OUT/admin.key)" -d '{"id": "globex", "timezone": "Europe/Paris"}'

TRY
exec "$PLAUDIT" serve --data "$DATA" --listen "$LISTEN"
