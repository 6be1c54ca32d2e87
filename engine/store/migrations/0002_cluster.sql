-- Schema version 2: the nodes of a cluster and the leases by which each organisation is owned
-- by one of them at a time (lease.rs, postgres.rs). Every time is the database's clock, so
-- that nodes whose clocks differ agree on what has expired.

-- The `plaudit serve` nodes sharing this database: how the others reach each, which process
-- it is (`incarnation`, drawn at start: a node restarted under its name is a new one), when it
-- was last seen, and whether it is leaving (handing its organisations off before it stops).
CREATE TABLE nodes (
    node text COLLATE "C" PRIMARY KEY,
    address text NOT NULL,
    incarnation bigint NOT NULL,
    seen timestamptz NOT NULL,
    leaving boolean NOT NULL DEFAULT false
);

-- org -> the node that owns it, under which incarnation, its epoch (the fencing token: one
-- more each time the lease changes hands; every write to the organisation's log checks it in
-- its own transaction) and until when. An expired lease is free to take.
CREATE TABLE leases (
    org text COLLATE "C" PRIMARY KEY,
    node text COLLATE "C" NOT NULL,
    incarnation bigint NOT NULL,
    epoch bigint NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX leases_by_node ON leases (node, incarnation);
