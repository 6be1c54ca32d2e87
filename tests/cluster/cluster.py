#!/usr/bin/env python3
"""Several `plaudit serve` nodes on one PostgreSQL, as real processes on loopback, through the
failures clustering must survive (issue 31). Each scenario starts its own nodes on a fresh
database, sends moments from several client threads (every moment a unique id, retried until
acknowledged as accepted or duplicate, every acknowledgement recorded), breaks something, and
checks at the end that every acknowledged moment counts exactly once (one point per moment of
kind `tick`: each stakeholder's points equal the number of distinct moment ids acknowledged for
them) and that the live state equals `plaudit replay --from-start --summary` of the log.

  kill       SIGKILL the owner of an organisation, round after round: the time from the kill to
             the first acknowledged write for it (median, max); the node restarted each round
  sigstop    SIGSTOP an owner past its lease: another node takes over and accepts moments; the
             first, resumed (SIGCONT), is fenced and drops the organisation
  pgrestart  PostgreSQL restarted (pg_ctl restart -m fast) under load: writes resume by themselves
  joinleave  two nodes, a third joins (organisations move to it), one leaves with SIGTERM
  opening    reads of an organisation on the node taking it over while it opens a long log,
             the organisation created on another node since it started: 503 until open, never
             401 (it was 401: the node had no key for it until open)

Any 5xx answer but a 503, a 503 or 429 without Retry-After, another 4xx, a panic in a node's
log, a node that dies by itself, or a bound passed fails the run (exit 1) with the reason; the
nodes' logs are kept in a temp folder and their tails printed.

Usage: python3 tests/cluster/cluster.py [--bin BINARY] [--postgres URL] [SCENARIO...]
  The database server: --postgres, or PLAUDIT_TEST_POSTGRES (an admin URL: a database is
  created per scenario through it); the pgrestart scenario also needs its data folder,
  POSTGRES_DIR (scripts/lib/postgres.sh sets it), and is skipped without. With neither, a private
  PostgreSQL 15 is started in a temp folder (as scripts/lib/postgres.sh does) and removed after.
  Python 3 standard library only; `psql` from /usr/lib/postgresql/15/bin.
"""
import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = "/usr/lib/postgresql/15/bin"
SCENARIOS = ["kill", "sigstop", "pgrestart", "joinleave", "opening"]
EXTRA = []  # named to run: not in the default run
NODE_HEADER = "x-plaudit-node"
AT = 1767225600  # 2026-01-01T00:00:00Z: the moments' times count up from here, a second each

START = time.time()


def say(message):
    print("[%6.1f s] %s" % (time.time() - START, message), flush=True)


class Failed(Exception):
    """A scenario's failure: the message says what was seen."""


# ------------------------------------------------------------------------------------------
# Child processes: every one registered, every one killed at exit, whatever the exit.

CHILDREN = []
CLEANUPS = []  # run after the children are killed, whatever the exit (the private PostgreSQL)


CLEANING = threading.Lock()  # one cleaner at a time (the watchdog's, the exit's), the second waiting


def kill_children():
    with CLEANING:
        clean()


def clean():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.kill()  # SIGKILL works on a stopped process too
                p.wait(timeout=10)
            except Exception:
                pass
    while CLEANUPS:
        try:
            CLEANUPS.pop()()
        except Exception:
            pass


atexit.register(kill_children)


def on_signal(signum, _frame):
    say("interrupted (signal %d): stopping every process started" % signum)
    kill_children()
    os._exit(130)


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, timeout, env=None, check=True):
    """Runs `cmd` to its end (bounded); its stdout."""
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Failed("%s: still running after %d s" % (" ".join(cmd[:3]), timeout))
    if check and done.returncode != 0:
        raise Failed("%s: exit %d: %s" % (" ".join(cmd[:3]), done.returncode, (done.stderr or done.stdout)[-2000:]))
    return done.stdout


# ------------------------------------------------------------------------------------------
# PostgreSQL: the server given (admin URL, maybe its data folder) or a private one.

def as_owner(cmd):
    """A PostgreSQL program run as the cluster's owner (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self, url, folder):
        self.url = url  # the admin URL: a database on it from which to create others
        self.folder = folder  # POSTGRES_DIR: data in folder/data; None when not ours to restart
        self.private = False

    @staticmethod
    def private_one():
        if not os.path.exists(os.path.join(PG_BIN, "initdb")):
            raise Failed("no PostgreSQL 15 in %s: install postgresql-15 (scripts/lib/postgres.sh does) or give --postgres" % PG_BIN)
        if os.geteuid() == 0:
            subprocess.run(["id", "postgres"], capture_output=True, check=True)
        folder = tempfile.mkdtemp(prefix="plaudit-pg.")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        pg = Postgres(None, folder)
        pg.private = True
        CLEANUPS.append(pg.remove)
        run(as_owner([PG_BIN + "/initdb", "-D", folder + "/data", "-U", "postgres", "-A", "trust", "--no-sync",
                      "-E", "UTF8", "--locale=C.UTF-8"]), 120)
        port = free_port()
        run(as_owner([PG_BIN + "/pg_ctl", "-D", folder + "/data", "-l", folder + "/server.log", "-w", "-t", "30", "-o",
                      "-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c max_connections=200" % (port, folder),
                      "start"]), 60)
        pg.url = "postgres://postgres@127.0.0.1:%d/postgres" % port
        say("postgres: a private PostgreSQL 15 on 127.0.0.1:%d (%s)" % (port, folder))
        return pg

    def remove(self):
        if self.private and self.folder and os.path.isdir(self.folder):
            subprocess.run(as_owner([PG_BIN + "/pg_ctl", "-D", self.folder + "/data", "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)
            shutil.rmtree(self.folder, ignore_errors=True)

    def sql(self, statement, timeout=60):
        return run([PG_BIN + "/psql", self.url, "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", statement], timeout)

    def create_database(self, name):
        self.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        self.sql("CREATE DATABASE %s" % name)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, name):
        try:
            self.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
        except Failed as e:
            say("note: could not drop database %s: %s" % (name, e))

    def stop(self):
        cmd = as_owner([PG_BIN + "/pg_ctl", "-D", self.folder + "/data", "-m", "fast", "-w", "-t", "60", "stop"])
        run(cmd, 90)

    def restart(self):
        # Its output to its log: the server started keeps the descriptors it is given open.
        cmd = as_owner([PG_BIN + "/pg_ctl", "-D", self.folder + "/data", "-l", self.folder + "/server.log", "-m", "fast",
                        "-w", "-t", "60", "restart"])
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  timeout=90)
        except subprocess.TimeoutExpired:
            raise Failed("pg_ctl restart: still running after 90 s")
        if done.returncode != 0:
            raise Failed("pg_ctl restart: exit %d (its log: %s/server.log)" % (done.returncode, self.folder))


# ------------------------------------------------------------------------------------------
# HTTP

def http(method, base, path, key=None, body=None, timeout=10.0, content_type="application/json"):
    """(status, headers with lower-case names, text); status None when no answer came (refused,
    reset, timed out)."""
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = "Bearer " + key
    request = urllib.request.Request(base + path, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as e:
        try:
            text = e.read().decode()
        except Exception:
            text = ""
        return e.code, {k.lower(): v for k, v in e.headers.items()}, text
    except Exception as e:  # refused, reset, timed out, a broken answer: no answer
        return None, {}, "%s: %s" % (type(e).__name__, e)


# ------------------------------------------------------------------------------------------
# Nodes

class Node:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.port = free_port()  # kept across restarts: other nodes know it by its address
        self.url = "http://127.0.0.1:%d" % self.port
        self.data = os.path.join(cluster.folder, name)
        self.log = os.path.join(cluster.folder, name + ".log")
        self.proc = None
        self.stopped = False  # SIGSTOPped

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=90):
        c = self.cluster
        env = dict(os.environ, PLAUDIT_STORE=c.db_url, PLAUDIT_NODE=self.name, PLAUDIT_ADVERTISE=self.url,
                   PLAUDIT_LEASE_MS=str(c.lease_ms), PLAUDIT_ADMIN_KEY=c.admin_key)
        with open(self.log, "ab") as f:
            f.write(b"=== cluster.py: %s started at %.1f s\n" % (self.name.encode(), time.time() - START))
            offset = f.tell()
            self.proc = subprocess.Popen(
                [c.binary, "serve", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port, "--config", c.config],
                stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=env)
        CHILDREN.append(self.proc)
        self.stopped = False
        end = time.time() + timeout
        while time.time() < end:
            with open(self.log, "rb") as f:
                f.seek(offset)
                if re.search(rb"(^|\n)listening on ", f.read()):
                    return
            if self.proc.poll() is not None:
                raise Failed("node %s exited (%s) before listening" % (self.name, self.proc.returncode))
            time.sleep(0.05)
        raise Failed("node %s not listening after %d s" % (self.name, timeout))

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.stopped = False

    def terminate(self, timeout=60):
        """SIGTERM, then the exit within `timeout`: its status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed("node %s still running %d s after SIGTERM" % (self.name, timeout))


class Book:
    """What the clients saw: every acknowledged moment by organisation and stakeholder, and every
    failure (distinct messages counted)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # org -> stakeholder -> set of moment ids
        self.acks = []  # (time, org, answering node)
        self.doubt = {}  # org -> {moment id: stakeholder}: sent, never acknowledged
        self.failures = {}  # message -> count
        self.first_failed = {}  # message -> when first seen (UTC, as the nodes' logs write it)
        self.answers = {}  # status -> count
        self.sent = 0

    def ack(self, org, moments, node):
        with self.lock:
            for m in moments:
                self.acked.setdefault(org, {}).setdefault(m["stakeholder"], set()).add(m["id"])
            self.acks.append((time.time(), org, node))

    def fail(self, message):
        with self.lock:
            if message not in self.failures:
                self.first_failed[message] = time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (time.time() % 1 * 1000)
            self.failures[message] = self.failures.get(message, 0) + 1

    def count(self, status):
        with self.lock:
            self.answers[status] = self.answers.get(status, 0) + 1

    def acknowledged(self):
        with self.lock:
            return sum(len(ids) for people in self.acked.values() for ids in people.values())


def normalised(text):
    """A failure's text without what differs between occurrences (ids, numbers)."""
    return re.sub(r"\d+", "N", text)[:300]


class Cluster:
    """The nodes of one scenario, on their own database."""

    def __init__(self, opts, pg, folder, scenario, names):
        self.opts = opts
        self.pg = pg
        self.binary = opts.bin
        self.lease_ms = opts.lease_ms
        self.admin_key = "admin-%d" % random.randrange(10 ** 12)
        self.folder = folder
        self.db_name = "plaudit_cluster_%s_%d" % (scenario, os.getpid())
        self.db_url = pg.create_database(self.db_name)
        self.config = os.path.join(folder, "node.toml")
        with open(self.config, "w") as f:
            # Moments of any date, records as fast as they come; snapshots often, so a failover
            # loads a snapshot and replays the tail after it.
            f.write("snapshot_every = 200\n"
                    "[moments]\nmax_age_seconds = 3155760000\nmax_ahead_seconds = 3155760000\n"
                    "[quotas]\nrecords_per_second = 100000000\nrecords_burst = 1000000000\n")
        self.nodes = {name: Node(self, name) for name in names}
        self.keys = {}  # org -> key
        self.book = Book()
        self.rng = random.Random(opts.seed)
        self.counter = 0
        self.counter_lock = threading.Lock()

    def live(self):
        return [n for n in self.nodes.values() if n.running() and not n.stopped]

    def any_live(self, exclude=None):
        nodes = [n for n in self.live() if n.name != exclude]
        if not nodes:
            raise Failed("no live node (but %s)" % exclude)
        return random.choice(nodes)

    # --- the cluster's view -----------------------------------------------------------------

    def view(self, node=None, timeout=5):
        """GET /v1/cluster on `node` (a live one by default); None when it did not answer."""
        node = node or self.any_live()
        status, _, text = http("GET", node.url, "/v1/cluster", self.admin_key, timeout=timeout)
        if status != 200:
            return None
        return json.loads(text)

    def leases(self, node=None):
        """org -> (owner, epoch) for the leases not expired, as `node` sees them."""
        v = self.view(node)
        if v is None:
            return None
        return {l["org"]: (l["node"], l["epoch"]) for l in v.get("leases", []) if l.get("expires_in_ms", 1) > 0}

    def owner(self, org, timeout=30, exclude=None):
        """(owner, epoch) of `org`'s lease, waiting for one (not `exclude`'s) to exist."""
        end = time.time() + timeout
        while time.time() < end:
            leases = self.leases()
            if leases and org in leases and leases[org][0] != exclude:
                return leases[org]
            time.sleep(0.1)
        raise Failed("%s: no lease%s after %d s (GET /v1/cluster: %s)"
                     % (org, " but %s's" % exclude if exclude else "", timeout, json.dumps(self.view())))

    def converged(self, orgs):
        """Whether every live node sees every organisation leased to its placement's node, and
        every placement on a live node; the reason when not."""
        live = {n.name for n in self.live()}
        for node in self.live():
            v = self.view(node)
            if v is None:
                return "%s did not answer GET /v1/cluster" % node.name
            leases = {l["org"]: l["node"] for l in v.get("leases", []) if l.get("expires_in_ms", 1) > 0}
            placement = {p["org"]: p["node"] for p in v.get("placement", [])}
            seen_live = {x["node"] for x in v.get("nodes", []) if x.get("live") and not x.get("leaving")}
            if seen_live != live:
                return "%s sees live nodes %s, not %s" % (node.name, sorted(seen_live), sorted(live))
            for org in orgs:
                if placement.get(org) not in live:
                    return "%s places %s on %s" % (node.name, org, placement.get(org))
                if leases.get(org) != placement[org]:
                    return "%s: %s leased to %s, placed on %s" % (node.name, org, leases.get(org), placement[org])
        return None

    def wait_converged(self, orgs, timeout):
        end = time.time() + timeout
        why = None
        while time.time() < end:
            why = self.converged(orgs)
            if why is None:
                return
            time.sleep(0.2)
        raise Failed("the cluster did not settle in %d s: %s" % (timeout, why))

    # --- organisations ---------------------------------------------------------------------

    def retrying(self, what, method, path, key, body, ok, timeout=60, content_type="application/json"):
        """A request retried (on any node) through 503s, 429s and missing answers until one of
        the statuses `ok`; its text."""
        end = time.time() + timeout
        last = None
        while time.time() < end:
            node = self.any_live()
            status, headers, text = http(method, node.url, path, key, body, timeout=15, content_type=content_type)
            if status in ok:
                return text
            last = "%s on %s: %s %s" % (what, node.name, status, text[:300])
            if status is not None and status not in (429, 503):
                raise Failed(last)
            time.sleep(0.2)
        raise Failed("%s: not done in %d s; last: %s" % (what, timeout, last))

    def create_orgs(self, orgs):
        """Creates `orgs` (POST /v1/orgs on any node), waits until every node answers for each
        (another node learns of a new organisation at its next tick: until then it answers 401,
        as for an organisation nobody has), then publishes the test's rule set in each."""
        for org in orgs:
            text = self.retrying("POST /v1/orgs %s" % org, "POST", "/v1/orgs", self.admin_key,
                                 {"id": org, "timezone": "UTC", "seed": 7}, (201,))
            self.keys[org] = json.loads(text)["key"]
        self.wait_served(orgs, "its creation", allowed=(401, 503))
        for org in orgs:
            self.retrying("PUT %s's rules" % org, "PUT", "/v1/orgs/%s/rules" % org, self.keys[org], RULES % org, (200,),
                          content_type="application/toml")

    def wait_served(self, orgs, since, allowed=(503,), timeout=None):
        """Every live node answers a read of each of `orgs` (200), within `timeout` (two leases
        and 5 s by default); the answers `allowed` meanwhile."""
        timeout = timeout or 2 * self.lease_ms / 1000 + 5
        for node in self.live():
            for org in orgs:
                end = time.time() + timeout
                while True:
                    status, _, text = http("GET", node.url, "/v1/orgs/%s/rules" % org, self.keys[org])
                    if status == 200:
                        break
                    if (status is not None and status not in allowed) or time.time() > end:
                        raise Failed("%s does not serve %s %.0f s after %s: %s %s"
                                     % (node.name, org, timeout, since, status, text[:300]))
                    time.sleep(0.1)

    # --- moments ---------------------------------------------------------------------------

    def moments(self, org, tag, n, rng):
        with self.counter_lock:
            first = self.counter
            self.counter += n
        return [{"id": "%s-%s-%d" % (org, tag, first + i), "stakeholder": "p%d" % rng.randrange(self.opts.people),
                 "kind": "tick", "channel": "api",
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(AT + first + i))} for i in range(n)]

    def send(self, org, moments, timeout=60, first=None, exclude=None, fast=False):
        """Posts `moments` until acknowledged (every one accepted or duplicate), on `first` for
        the first try and on any live node (not `exclude`) after; the answering node, or None
        (recorded as in doubt and as a failure) when not acknowledged within `timeout`.
        `fast`: waits at most 1.5 s for an answer and retries every 0.1 s whatever Retry-After
        says (to time a failover)."""
        book = self.book
        end = time.time() + timeout
        node = first
        tries = 0
        while time.time() < end:
            node = node or self.any_live(exclude)
            status, headers, text = http("POST", node.url, "/v1/orgs/%s/moments" % org, self.keys[org], moments,
                                         timeout=max(1.0, min(1.5 if fast else 20.0, end - time.time())))
            tries += 1
            book.count(status)
            answered_by = headers.get(NODE_HEADER)
            if status is not None and answered_by is None:
                book.fail("an answer %s without %s (POST moments)" % (status, NODE_HEADER))
            if status in (200, 201):
                try:
                    body = json.loads(text)
                except ValueError:
                    body = {"refused": "not JSON"}
                if body.get("refused") or body["accepted"] + body["duplicates"] != len(moments):
                    book.fail("%s: moments answered %s but not all taken: %s" % (org, status, normalised(text)))
                else:
                    book.ack(org, moments, answered_by)
                    return answered_by or "(unnamed)"
            elif status in (429, 503):
                retry = headers.get("retry-after")
                if retry is None:
                    book.fail("%s without Retry-After: %s" % (status, normalised(text)))
                pause = 0.1 if fast else min(float(retry or 1), 1.0) * random.uniform(0.5, 1.0)
                time.sleep(pause)
            elif status is None:
                time.sleep(0.1)
            else:
                book.fail("%s: POST moments answered %s by %s: %s" % (org, status, answered_by, normalised(text)))
                time.sleep(0.2)
            node = None
        with book.lock:
            for m in moments:
                book.doubt.setdefault(org, {})[m["id"]] = m["stakeholder"]
        book.fail("%s: moments never acknowledged within %d s" % (org, timeout))
        return None

    def probe(self, org, timeout, exclude=None, tag="probe"):
        """One moment for `org` sent until acknowledged, retried every 0.1 s: (seconds, node)."""
        t0 = time.time()
        node = self.send(org, self.moments(org, tag, 1, self.rng), timeout=timeout, exclude=exclude, fast=True)
        if node is None:
            raise Failed("%s: no write acknowledged within %d s" % (org, timeout))
        return time.time() - t0, node

    # --- reads -----------------------------------------------------------------------------

    def get(self, org, path, timeout=30):
        text = self.retrying("GET " + path, "GET", path, self.keys[org], None, (200,), timeout=timeout)
        return json.loads(text)

    # --- the checks ------------------------------------------------------------------------

    def check_exactly_once(self, orgs):
        """Each stakeholder's points (one a `tick`) equal the moments acknowledged for them."""
        book = self.book
        if book.doubt:
            raise Failed("moments never acknowledged: %s" % {o: len(d) for o, d in book.doubt.items()})
        problems = []
        total = 0
        for org in orgs:
            people = book.acked.get(org, {})
            for who in sorted(people):
                profile = self.get(org, "/v1/orgs/%s/stakeholders/%s" % (org, who))
                points = profile["currencies"].get("points", 0)
                total += points
                if points != len(people[who]):
                    problems.append("%s/%s: %d points for %d acknowledged moments (%s)"
                                    % (org, who, points, len(people[who]), "lost" if points < len(people[who]) else "counted twice"))
        if problems:
            raise Failed("not exactly once: " + "; ".join(problems[:10]))
        say("exactly once: %d acknowledged moments, %d points, over %d organisations" % (book.acknowledged(), total, len(orgs)))

    def check_replay(self, orgs):
        """The live state equals a replay of the log from its start."""
        scratch = tempfile.mkdtemp(prefix="replay-", dir=self.folder)
        env = dict(os.environ, PLAUDIT_STORE=self.db_url)
        for name in ("PLAUDIT_NODE", "PLAUDIT_ADVERTISE", "PLAUDIT_LEASE_MS"):
            env.pop(name, None)
        for org in orgs:
            summary = json.loads(run([self.binary, "replay", "--data", scratch, "--org", org, "--summary", "--from-start",
                                      "--top", "500"], 180, env=env))
            replayed = {p["id"]: p for p in summary["profiles"]}
            expected = set(self.book.acked.get(org, {}))
            if set(replayed) != expected:
                raise Failed("%s: the replay has stakeholders %s, the clients acknowledged moments for %s"
                             % (org, sorted(replayed), sorted(expected)))
            for who, profile in sorted(replayed.items()):
                live = self.get(org, "/v1/orgs/%s/stakeholders/%s" % (org, who))
                if live != profile:
                    raise Failed("%s/%s: live %s, replayed %s" % (org, who, json.dumps(live), json.dumps(profile)))
            board = self.get(org, "/v1/orgs/%s/leaderboards/points?limit=500" % org)
            replayed_board = next(b for b in summary["leaderboards"] if b["board"] == "points")
            if board != replayed_board:
                raise Failed("%s: live board %s, replayed %s" % (org, json.dumps(board)[:500], json.dumps(replayed_board)[:500]))
        say("replay: the live state of %d organisations equals a replay of their logs from the start" % len(orgs))

    def check_health(self):
        """No failure seen by a client, no panic in a log, no node dead by itself."""
        if self.book.failures:
            lines = ["%d x %s (first at %s)" % (n, m, self.book.first_failed[m])
                     for m, n in sorted(self.book.failures.items(), key=lambda x: -x[1])]
            raise Failed("the clients saw failures:\n  " + "\n  ".join(lines[:15]))
        for node in self.nodes.values():
            if os.path.exists(node.log):
                with open(node.log, errors="replace") as f:
                    text = f.read()
                if "panicked" in text:
                    raise Failed("node %s panicked: %s" % (node.name, text[text.index("panicked") - 200:][:1200]))
                # An organisation's world found out of step with its log: its writes halted.
                found = re.search(r".*(disagrees with the log|writes halted).*", text)
                if found:
                    raise Failed("node %s: %s" % (node.name, found.group(0)[:600]))

    def nodes_alive(self, names):
        for name in names:
            node = self.nodes[name]
            if node.proc is not None and node.proc.poll() is not None:
                raise Failed("node %s died by itself (exit %s)" % (name, node.proc.returncode))

    def stop(self):
        for node in self.nodes.values():
            if node.running():
                if node.stopped:
                    node.signal(signal.SIGCONT)
                try:
                    node.terminate(timeout=30)
                except Failed:
                    node.kill()

    def tails(self, lines=40):
        for node in self.nodes.values():
            if os.path.exists(node.log):
                with open(node.log, errors="replace") as f:
                    tail = f.readlines()[-lines:]
                print("---- %s (%s), last %d lines" % (node.name, node.log, len(tail)))
                sys.stdout.write("".join(tail))


RULES = """\
[organisation]
id = "%s"
timezone = "UTC"
seed = 7

[[currency]]
id = "points"
name = "Points"

[[rule]]
id = "tick"
description = "One point a tick: the count of a stakeholder's moments"
match = { kind = ["tick"] }
award = [{ to = "actor", currency = "points", amount = 1 }]

[[badge]]
id = "regular"
metric = "points"
tiers = [{ name = "bronze", at = 10 }, { name = "silver", at = 50 }, { name = "gold", at = 200 }]

[levels]
currency = "points"
steps = [{ name = "new", at = 0 }, { name = "known", at = 25 }, { name = "pillar", at = 100 }]

[[leaderboard]]
id = "points"
metric = "points"
"""


class Clients:
    """`per_org` threads for each organisation posting batches of 1 to 3 moments to random live
    nodes, each retried until acknowledged (one organisation between owners holds up only its
    own)."""

    def __init__(self, cluster, orgs, per_org, tag):
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i, org, tag), daemon=True)
                        for i, org in enumerate(orgs * per_org)]
        for t in self.threads:
            t.start()

    def run(self, i, org, tag):
        c = self.cluster
        rng = random.Random(c.opts.seed * 1000 + i)
        while not self.stop_event.is_set():
            try:
                c.send(org, c.moments(org, "%s%d" % (tag, i), rng.randint(1, 3), rng), timeout=c.opts.ack_timeout)
            except Failed as e:  # no live node for a moment
                c.book.fail(str(e))
                time.sleep(0.2)
            except Exception as e:  # the harness's own bug: said, not a silent thread's end
                c.book.fail("client %d: %s: %s" % (i, type(e).__name__, e))
                time.sleep(0.2)
            time.sleep(c.opts.pause)

    def stop(self):
        """Stops sending; the moments in flight are retried until acknowledged first."""
        self.stop_event.set()
        end = time.time() + self.cluster.opts.ack_timeout + 30
        for t in self.threads:
            t.join(timeout=max(0.1, end - time.time()))
        if any(t.is_alive() for t in self.threads):
            raise Failed("a client thread still running %d s after the stop" % (self.cluster.opts.ack_timeout + 30))


def org_names(n):
    return ["org%d" % i for i in range(n)]


# ------------------------------------------------------------------------------------------
# Scenarios

def scenario_kill(c, opts):
    orgs = org_names(opts.orgs)
    for node in c.nodes.values():
        node.start()
    c.create_orgs(orgs)
    clients = Clients(c, orgs, opts.clients, "k")
    times = []
    for r in range(opts.rounds):
        org = orgs[r % len(orgs)]
        owner, epoch = c.owner(org)
        node = c.nodes[owner]
        t0 = time.time()
        node.kill()
        took, by = c.probe(org, timeout=c.lease_ms / 1000 + 30, exclude=owner, tag="kill%d-" % r)
        if by == owner:
            raise Failed("%s: a write acknowledged by %s after it was SIGKILLed" % (org, owner))
        took = time.time() - t0
        times.append(took)
        _, new_epoch = c.owner(org, exclude=owner)
        if new_epoch <= epoch:
            raise Failed("%s: taken over by %s at epoch %d, not above the killed owner's %d" % (org, by, new_epoch, epoch))
        say("kill %d/%d: %s owned %s (epoch %d), SIGKILLed: served again by %s (epoch %d) after %.2f s"
            % (r + 1, opts.rounds, owner, org, epoch, by, new_epoch, took))
        node.start()
        c.nodes_alive(c.nodes)
        # Settled (the restarted node back in the placement) before the next kill; but every
        # third round the next kill comes at once, while organisations move back to the node
        # just restarted.
        if r % 3 != 1:
            c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 20)
    c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 20)
    clients.stop()
    c.nodes_alive(c.nodes)
    c.check_health()
    c.check_exactly_once(orgs)
    c.check_replay(orgs)
    say("kill: failover (SIGKILL -> first acknowledged write) over %d rounds: median %.2f s, max %.2f s, min %.2f s "
        "(lease %d ms)" % (len(times), statistics.median(times), max(times), min(times), c.lease_ms))
    return {"failover_median_s": statistics.median(times), "failover_max_s": max(times), "failover_min_s": min(times),
            "failover_s": [round(t, 2) for t in times]}


def scenario_sigstop(c, opts):
    orgs = org_names(opts.orgs)
    for node in c.nodes.values():
        node.start()
    c.create_orgs(orgs)
    clients = Clients(c, orgs, opts.clients, "s")
    time.sleep(1)
    results = []
    for r in range(opts.stops):
        results.append(sigstop_round(c, opts, orgs, orgs[r % len(orgs)], r))
        c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 20)
    for o in orgs:
        c.probe(o, timeout=30, tag="after-")
    clients.stop()
    c.nodes_alive(c.nodes)
    c.check_health()
    c.check_exactly_once(orgs)
    c.check_replay(orgs)
    fenced = 0
    for node in c.nodes.values():
        with open(node.log, errors="replace") as f:
            fenced += sum(1 for l in f if "another node owns the organisation now" in l)
    say("sigstop: %d writes of a resumed node refused by the store's fence (the rest by the lease check before)" % fenced)
    return {"takeover_s": [r["takeover_s"] for r in results], "fenced_writes": fenced,
            "held": [h for r in results for h in r["held"]],
            "forwarded_to_stopped": [f for r in results for f in r["forwarded"]]}


def sigstop_round(c, opts, orgs, org, r):
    """`org`'s owner SIGSTOPped for twice the lease: taken over, then fenced once resumed."""
    owner, epoch = c.owner(org)
    node = c.nodes[owner]
    node.signal(signal.SIGSTOP)
    t0 = time.time()
    say("sigstop %d/%d: %s owns %s (epoch %d): SIGSTOPped" % (r + 1, opts.stops, owner, org, epoch))
    # Requests sent to the stopped owner itself: it answers them once resumed, with a lease it
    # no longer holds; then (if not acknowledged) retried on the others.
    held = []

    def held_request(i):
        moments = c.moments(org, "held%d-" % i, 1, random.Random(i))
        status, headers, text = http("POST", node.url, "/v1/orgs/%s/moments" % org, c.keys[org], moments,
                                     timeout=c.lease_ms / 1000 * 4 + 30)
        c.book.count(status)
        held.append((status, headers.get(NODE_HEADER), text[:200]))
        if status in (200, 201):
            body = json.loads(text)
            if body["accepted"] + body["duplicates"] == 1:
                c.book.ack(org, moments, headers.get(NODE_HEADER))
                return
        c.send(org, moments, timeout=opts.ack_timeout)

    forwarded = []

    def forwarded_request():
        """One sent to another node, which forwards it to the stopped owner: how long it waits."""
        moments = c.moments(org, "fwd-", 1, random.Random(9))
        other = c.any_live(exclude=owner)
        t = time.time()
        status, headers, text = http("POST", other.url, "/v1/orgs/%s/moments" % org, c.keys[org], moments,
                                     timeout=c.lease_ms / 1000 * 4 + 70)
        c.book.count(status)
        forwarded.append((time.time() - t, other.name, status, headers.get(NODE_HEADER), text[:200]))
        if status in (200, 201) and json.loads(text)["accepted"] + json.loads(text)["duplicates"] == 1:
            c.book.ack(org, moments, headers.get(NODE_HEADER))
        else:
            c.send(org, moments, timeout=opts.ack_timeout)

    holders = [threading.Thread(target=held_request, args=(i,), daemon=True) for i in range(3)]
    holders.append(threading.Thread(target=forwarded_request, daemon=True))
    for t in holders:
        t.start()
    took, by = c.probe(org, timeout=c.lease_ms / 1000 + 30, exclude=owner, tag="stop%d-" % r)
    took = time.time() - t0
    new_owner, new_epoch = c.owner(org, exclude=owner)
    if by == owner or new_owner == owner or new_epoch <= epoch:
        raise Failed("%s: after %s's SIGSTOP, a write acknowledged by %s; lease %s at epoch %d (was %d)"
                     % (org, owner, by, new_owner, new_epoch, epoch))
    say("sigstop %d/%d: %s taken over by %s (epoch %d), first write acknowledged %.2f s after the SIGSTOP"
        % (r + 1, opts.stops, org, new_owner, new_epoch, took))
    # Stopped for twice the lease at least, the clients writing on the others meanwhile.
    time.sleep(max(0.0, t0 + 2 * c.lease_ms / 1000 - time.time()))
    node.signal(signal.SIGCONT)
    for t in holders:
        t.join(timeout=opts.ack_timeout + c.lease_ms / 1000 * 4 + 40)
    answers = {}
    for status, answered_by, text in held:
        answers["%s by %s" % (status, answered_by)] = answers.get("%s by %s" % (status, answered_by), 0) + 1
        if status in (200, 201) and answered_by == owner:
            # Only right if it took the organisation back after the resume, at a newer epoch.
            lease = c.leases(c.any_live(exclude=owner)) or {}
            if lease.get(org) == (new_owner, new_epoch):
                raise Failed("%s: the resumed %s acknowledged a held write while %s holds the lease at epoch %d: "
                             "not fenced" % (org, owner, new_owner, new_epoch))
    say("sigstop %d/%d: %s resumed (SIGCONT); the requests it held answered %s%s" % (
        r + 1, opts.stops, owner, answers,
        "".join("; one forwarded to it by %s answered %s by %s after %.2f s" % (via, status, answered_by, took_)
                for took_, via, status, answered_by, _ in forwarded)))
    # The resumed node sees the new owner (or took the organisation back at a newer epoch).
    end = time.time() + 30
    while True:
        leases = c.leases(node) if node.running() else None
        if leases and org in leases and leases[org][1] >= new_epoch:
            say("sigstop %d/%d: the resumed %s sees %s leased to %s at epoch %d"
                % (r + 1, opts.stops, owner, org, leases[org][0], leases[org][1]))
            break
        if time.time() > end:
            raise Failed("%s: the resumed %s does not see the new lease (epoch >= %d) after 30 s: %s"
                         % (org, owner, new_epoch, json.dumps(c.view(node))))
        time.sleep(0.2)
    return {"takeover_s": round(took, 2), "held": [(s, n) for s, n, _ in held],
            "forwarded": [(round(f[0], 2), f[2], f[3]) for f in forwarded]}


def scenario_pgrestart(c, opts):
    orgs = org_names(opts.orgs)
    for node in c.nodes.values():
        node.start()
    c.create_orgs(orgs)
    clients = Clients(c, orgs, opts.clients, "p")
    time.sleep(2)
    before = c.book.acknowledged()
    t0 = time.time()
    c.pg.restart()
    say("pgrestart: PostgreSQL restarted (pg_ctl restart -m fast) in %.2f s, %d moments acknowledged before"
        % (time.time() - t0, before))
    resumed = []
    for org in orgs:
        took, by = c.probe(org, timeout=60, tag="pg-")
        resumed.append(time.time() - t0)
    say("pgrestart: every organisation took a write again %.2f s after the restart began (the last)" % max(resumed))
    time.sleep(1)
    # Down for longer than a lease: every lease expires by the database's clock meanwhile.
    down = 2 * c.lease_ms / 1000 + 1
    resumed_long = []
    for outage in range(opts.outages):
        t0 = time.time()
        c.pg.stop()
        time.sleep(down)
        c.pg.restart()
        say("pgrestart: PostgreSQL stopped for %.1f s (twice the lease and a second), started again" % (time.time() - t0))
        t1 = time.time()
        for org in orgs:
            c.probe(org, timeout=60, tag="pg%d-" % (outage + 2))
        resumed_long.append(time.time() - t1)
        say("pgrestart: every organisation took a write again %.2f s after PostgreSQL was back (the last)"
            % resumed_long[-1])
        c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 20)
        time.sleep(1)
    clients.stop()
    c.nodes_alive(c.nodes)
    c.check_health()
    c.check_exactly_once(orgs)
    c.check_replay(orgs)
    return {"resumed_after_restart_s": round(max(resumed), 2), "resumed_after_outage_s": round(max(resumed_long), 2)}


def scenario_joinleave(c, opts):
    orgs = org_names(max(opts.orgs, 8))
    first, second, third = sorted(c.nodes)[:3]
    c.nodes[first].start()
    c.nodes[second].start()
    c.create_orgs(orgs)
    c.wait_converged(orgs, timeout=30)
    clients = Clients(c, orgs, opts.clients, "j")
    time.sleep(1)
    t0 = time.time()
    c.nodes[third].start()
    c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 30)
    owned = sorted(o for o, (n, _) in c.leases().items() if n == third and o in orgs)
    say("joinleave: %s joined: settled in %.2f s, %d organisations moved to it (%s)"
        % (third, time.time() - t0, len(owned), ", ".join(owned)))
    for org in orgs:
        c.probe(org, timeout=30, tag="join-")
    time.sleep(1)
    leaving = max((first, second), key=lambda n: sum(1 for o, (m, _) in c.leases().items() if m == n))
    t0 = time.time()
    status = c.nodes[leaving].terminate(timeout=60)
    say("joinleave: %s stopped (SIGTERM) in %.2f s, exit %s" % (leaving, time.time() - t0, status))
    if status != 0:
        raise Failed("%s exited %s after SIGTERM" % (leaving, status))
    c.wait_converged(orgs, timeout=c.lease_ms / 1000 * 3 + 30)
    say("joinleave: settled %.2f s after the SIGTERM" % (time.time() - t0))
    for org in orgs:
        c.probe(org, timeout=30, tag="leave-")
    time.sleep(1)
    clients.stop()
    c.nodes_alive([n for n in c.nodes if n != leaving])
    c.check_health()
    c.check_exactly_once(orgs)
    c.check_replay(orgs)
    return {"moved_to_joiner": len(owned)}


def scenario_opening(c, opts):
    """An organisation created on n1 after n2 started, with a long log (no snapshot), n1
    SIGKILLed; n2 takes it over and opens it; every answer of n2 meanwhile must be a 503 (or
    200), never a 401."""
    with open(c.config, "w") as f:
        f.write("snapshot_every = 0\n[moments]\nmax_age_seconds = 3155760000\nmax_ahead_seconds = 3155760000\n"
                "[quotas]\nrecords_per_second = 100000000\nrecords_burst = 1000000000\n")
    n1, n2 = c.nodes["n1"], c.nodes["n2"]
    n1.start()
    n2.start()
    orgs = org_names(10)  # some placed on n1 (all but surely)
    for org in orgs:  # every one created on n1
        status, _, text = http("POST", n1.url, "/v1/orgs", c.admin_key, {"id": org, "timezone": "UTC", "seed": 7})
        if status != 201:
            raise Failed("POST /v1/orgs on n1: %s %s" % (status, text[:200]))
        c.keys[org] = json.loads(text)["key"]
    c.wait_served(orgs, "its creation", allowed=(401, 503))
    for org in orgs:
        c.retrying("PUT %s's rules" % org, "PUT", "/v1/orgs/%s/rules" % org, c.keys[org], RULES % org, (200,),
                   content_type="application/toml")
    c.wait_converged(orgs, timeout=20)
    leases = c.leases()
    kept = [o for o in orgs if leases[o] == ("n1", 1)]  # never opened by n2
    if not kept:
        raise Failed("no organisation stayed on n1, its creator (placement): %s" % leases)
    org = kept[0]
    rng = random.Random(1)
    for b in range(30):
        moments = [{"id": "m%d-%d" % (b, i), "stakeholder": "p%d" % rng.randrange(50), "kind": "tick", "channel": "api",
                    "at": "2026-01-01T00:00:00Z"} for i in range(1000)]
        status, _, text = http("POST", n1.url, "/v1/orgs/%s/moments?effects=false" % org, c.keys[org], moments, timeout=60)
        if status not in (200, 201):
            raise Failed("POST moments: %s %s" % (status, text[:200]))
    seen = {}
    stop = threading.Event()

    def read():
        while not stop.is_set():
            status, _, _ = http("GET", n2.url, "/v1/orgs/%s/rules" % org, c.keys[org], timeout=5)
            seen[status] = seen.get(status, 0) + 1

    n1.kill()
    t0 = time.time()
    readers = [threading.Thread(target=read, daemon=True) for _ in range(4)]
    for t in readers:
        t.start()
    while time.time() - t0 < 30 and seen.get(200, 0) < 5:
        time.sleep(0.05)
    stop.set()
    for t in readers:
        t.join(timeout=10)
    say("opening: n2's answers for %s (30000 records, created on n1) while it took it over: %s" % (org, seen))
    if seen.get(401):
        raise Failed("n2 answered %d reads of %s with 401 while opening it (a node opening an organisation it "
                     "learned of at a tick has no key for it until open)" % (seen[401], org))
    return {"answers": {str(k): v for k, v in seen.items()}}


# ------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="which to run (default: all): " + ", ".join(SCENARIOS))
    parser.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                      "debug", "plaudit"))
    parser.add_argument("--postgres", default=os.environ.get("PLAUDIT_TEST_POSTGRES"),
                        help="an admin URL of a PostgreSQL server (default: PLAUDIT_TEST_POSTGRES; none: a private one)")
    parser.add_argument("--postgres-dir", default=os.environ.get("POSTGRES_DIR"),
                        help="that server's folder (its data in DIR/data), to restart it (default: POSTGRES_DIR)")
    parser.add_argument("--lease-ms", type=int, default=2000, help="PLAUDIT_LEASE_MS of the nodes (default 2000)")
    parser.add_argument("--rounds", type=int, default=10, help="kills in the kill loop (default 10)")
    parser.add_argument("--stops", type=int, default=3, help="SIGSTOPs in the sigstop scenario (default 3)")
    parser.add_argument("--outages", type=int, default=1,
                        help="PostgreSQL outages longer than the lease in the pgrestart scenario (default 1)")
    parser.add_argument("--orgs", type=int, default=4, help="organisations (default 4; 8 at least for joinleave)")
    parser.add_argument("--people", type=int, default=6, help="stakeholders an organisation (default 6)")
    parser.add_argument("--clients", type=int, default=1, help="client threads an organisation (default 1)")
    parser.add_argument("--pause", type=float, default=0.01, help="seconds a client waits between batches (default 0.01)")
    parser.add_argument("--ack-timeout", type=float, default=45, help="seconds to get a moment acknowledged (default 45)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="the whole run's bound, seconds (default 600)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases even when everything passed")
    opts = parser.parse_args()
    scenarios = opts.scenarios or SCENARIOS
    unknown = [s for s in scenarios if s not in SCENARIOS + EXTRA]
    if unknown:
        parser.error("unknown scenario %s (choose among %s)" % (", ".join(unknown), ", ".join(SCENARIOS)))
    random.seed(opts.seed)
    if not os.access(opts.bin, os.X_OK):
        print("cluster: no binary %s (cargo build -p plaudit)" % opts.bin)
        return 1

    def watchdog():
        time.sleep(opts.timeout)
        say("cluster: the run passed its bound of %.0f s: stopping (logs in %s)" % (opts.timeout, folder))
        kill_children()
        os._exit(1)

    folder = tempfile.mkdtemp(prefix="plaudit-cluster-")
    threading.Thread(target=watchdog, daemon=True).start()
    if opts.postgres:
        pg = Postgres(opts.postgres, opts.postgres_dir)
    else:
        pg = Postgres.private_one()
    results = {}
    failed = []
    for name in scenarios:
        if name == "pgrestart" and not pg.folder:
            say("pgrestart: skipped: the PostgreSQL server's folder is unknown (set POSTGRES_DIR or --postgres-dir)")
            continue
        say("%s: starting" % name)
        scenario_folder = os.path.join(folder, name)
        os.makedirs(scenario_folder)
        names = ["n1", "n2", "n3"]
        c = None
        t0 = time.time()
        try:
            c = Cluster(opts, pg, scenario_folder, name, names)
            results[name] = globals()["scenario_" + name](c, opts)
            by_node = {}
            for _, _, answered_by in c.book.acks:
                by_node[answered_by] = by_node.get(answered_by, 0) + 1
            say("%s: passed in %.1f s (%d moments acknowledged; answers %s; acknowledgements by node %s)"
                % (name, time.time() - t0, c.book.acknowledged(), dict(sorted(c.book.answers.items(), key=str)),
                   dict(sorted(by_node.items(), key=str))))
        except Failed as e:
            failed.append(name)
            say("%s: FAILED after %.1f s: %s" % (name, time.time() - t0, e))
            if c is not None:
                c.tails()
        finally:
            if c is not None:
                c.stop()
                if name not in failed and not opts.keep:
                    pg.drop_database(c.db_name)
    print("cluster: " + json.dumps(results))
    if failed:
        print("cluster: FAILED: %s; logs in %s" % (", ".join(failed), folder))
        return 1
    if not opts.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print("cluster: passed: %s" % ", ".join(s for s in scenarios if s in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
