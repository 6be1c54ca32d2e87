-- Plaudit's PostgreSQL store, schema version 1: the tables of the embedded store (redb.rs),
-- holding the same bytes (format.rs). Applied by PgStore::open in one transaction, recorded in
-- `schema_version`. Every organisation column is COLLATE "C", so that organisations and record
-- names sort by their bytes, as the embedded store sorts them.

-- name -> value: `format` is the store format version (format::FORMAT_VERSION).
CREATE TABLE meta (
    name text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (name, value) VALUES ('format', 1);

-- The records of one append, in order (format::encode_segment), and when the server received
-- them (Unix milliseconds; NULL for none), by (org, the sequence of its first record).
CREATE TABLE segments (
    org text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL,
    received bigint,
    bytes bytea NOT NULL,
    PRIMARY KEY (org, first_seq)
);

-- The sequence of each organisation's last record. Its row is the organisation's write lock:
-- every write that depends on the log's end takes it first.
CREATE TABLE last_seq (
    org text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL
);

-- (org, change number) -> format::encode_change of (after, change).
CREATE TABLE changes (
    org text COLLATE "C" NOT NULL,
    number bigint NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (org, number)
);

-- Plugin modules, once each, by their SHA-256 in hex.
CREATE TABLE modules (
    hash text COLLATE "C" PRIMARY KEY,
    bytes bytea NOT NULL
);

-- org -> the SHA-256 of its API key.
CREATE TABLE org_keys (
    org text COLLATE "C" PRIMARY KEY,
    key_hash bytea NOT NULL
);

-- (org, key id) -> a scoped key's record (the server's layout).
CREATE TABLE scoped_keys (
    org text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (org, name)
);

-- (org, setting) -> its value (the server's layout).
CREATE TABLE org_settings (
    org text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (org, name)
);

-- org -> the bytes of its segments, changes and the modules it installed, kept in the commit
-- of what it counts.
CREATE TABLE org_log_bytes (
    org text COLLATE "C" PRIMARY KEY,
    bytes bigint NOT NULL
);

-- org -> its newest snapshot (only that one is kept) and its checksum (format::snapshot_checksum,
-- the u64's bits as a bigint).
CREATE TABLE snapshots (
    org text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL,
    checksum bigint NOT NULL,
    bytes bytea NOT NULL
);

-- org -> the change number of an erasure committed whose VACUUM has not finished: what the
-- next open completes after a crash.
CREATE TABLE erasing (
    org text COLLATE "C" PRIMARY KEY,
    change bigint NOT NULL
);
