#!/usr/bin/env python3
"""A bounded stress run of what changes an organisation's history, from several clients at once:
moments, retractions, profiles, applications to history (rebase, additive, previews) and
erasures, against a real `plaudit serve` on loopback. Fails (exit 1) on any 5xx answer or a
panic in the server's log, printing the distinct failures. It found the races an erasure had
with an application to history and a what-if (tests/integration/erasure.rs pins one).

Usage: python3 tests/stress/changes.py [BINARY] [SECONDS] [SEED] [CLIENTS]
       (defaults: target/debug/plaudit, 20, 1, 3)
"""
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
args = sys.argv[1:] + [None] * 4
binary = args[0] or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "plaudit")
seconds = float(args[1] or 20)
seed = int(args[2] or 1)
clients = int(args[3] or 3)
random.seed(seed)

data = tempfile.mkdtemp(prefix="plaudit-stress-")
config = os.path.join(data, "server.toml")
with open(config, "w") as f:
    # Moments of any date, records as fast as they come: the run is about histories, not limits.
    f.write("[moments]\nmax_age_seconds = 3155760000\nmax_ahead_seconds = 3155760000\n"
            "[quotas]\nrecords_per_second = 100000000\nrecords_burst = 1000000000\n")
log = open(os.path.join(data, "server.log"), "w")
server = subprocess.Popen(
    [binary, "serve", "--data", os.path.join(data, "d"), "--listen", "127.0.0.1:0", "--demo",
     os.path.join(ROOT, "rules", "acme.toml"), "--no-demo-plugins", "--config", config],
    stdout=subprocess.PIPE, stderr=log, text=True)
key = addr = None
for line in server.stdout:
    found = re.search(r"key (\S+)$", line.strip())
    if line.startswith("demo:") and found:
        key = found.group(1)
    if line.startswith("listening on"):
        addr = line.split()[2]
        break


def request(method, path, body=None):
    data_ = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request("http://" + addr + path, method=method, data=data_,
                               headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


moments = [0]
lock = threading.Lock()
people = ["0", "00", "000", "a", "b"]


def one(rng):
    k, who = rng.random(), rng.choice(people)
    if k < 0.25:
        with lock:
            moments[0] += 1
            n = moments[0]
        m = {"id": "m%d" % n, "stakeholder": who, "kind": rng.choice(["0", "meetup", "answer"]),
             "channel": rng.choice(["0", "event"]), "at": "2000-01-01T00:00:00Z"}
        other = rng.choice(people)
        if rng.random() < 0.3 and other != who:
            m["counterpart"] = other
        return "moment", request("POST", "/v1/orgs/acme/moments", [m])
    if k < 0.35 and moments[0] > 0:
        return "retraction", request("POST", "/v1/orgs/acme/moments", [{"retract": "m%d" % rng.randint(1, moments[0])}])
    if k < 0.6:
        body = rng.choice([{}, {"team": "0"}, {"team": None}, {"kind": "00"}, {"name": "x"},
                           {"attrs": {"a": rng.randint(0, 3)}}, {"kind": "community", "team": "t%d" % rng.randint(0, 2)}])
        return "profile", request("PUT", "/v1/orgs/acme/stakeholders/" + who, body)
    if k < 0.8:
        return "apply", request("POST", "/v1/orgs/acme/rules/apply", {"mode": rng.choice(["rebase", "additive"]), "version": 1})
    if k < 0.85:
        return "erasure", request("DELETE", "/v1/orgs/acme/stakeholders/" + who)
    if k < 0.9:
        return "preview", request("POST", "/v1/orgs/acme/rules/apply", {"mode": "rebase", "version": 1, "preview": True})
    return "feed", request("GET", "/v1/orgs/acme/effects?limit=5")


failures = []
counts = collections.Counter()


def client(i):
    rng = random.Random(seed * 100 + i)
    end = time.time() + seconds
    while time.time() < end:
        what, (status, body) = one(rng)
        counts[what] += 1
        if status >= 500:
            failures.append("%s: %s" % (what, re.sub(r"erased-[0-9a-f]+|sequence \d+", "…", body)[:300]))


threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
server.kill()
server.wait()
log.close()
panics = open(os.path.join(data, "server.log")).read().count("panicked")
print("stress: seed %d, %d clients for %.0f s: %s; %d failures, %d panics"
      % (seed, clients, seconds, dict(counts), len(failures), panics))
for message, n in collections.Counter(failures).most_common(5):
    print("  %d x %s" % (n, message))
if failures or panics:
    print("stress: the server's log and data are kept in", data)
    sys.exit(1)
shutil.rmtree(data, ignore_errors=True)
