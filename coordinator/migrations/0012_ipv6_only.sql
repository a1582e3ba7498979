-- IPv6-only segments (issue 16): a segment's IPv4 network and a member's IPv4 address
-- become optional. A segment still holds at least one prefix (net or net6), which the
-- store's rules check; a member holds an address from each prefix its segment has.
--
-- SQLite cannot drop NOT NULL in place, so both tables are rebuilt keeping every row,
-- constraint and index. `members` is the only table that references `segments`, so the
-- new `members` points at the new `segments` while the old tables are dropped (children
-- first: no foreign key ever sees a missing parent), and renaming `segments_new` rewrites
-- that reference to `segments` (SQLite 3.26+, legacy_alter_table off).

CREATE TABLE segments_new (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    net              BIGINT,
    prefix           INTEGER,
    default_action   TEXT NOT NULL,
    psk              TEXT NOT NULL,
    psk_version      BIGINT NOT NULL,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    policy           TEXT,
    policy_version   BIGINT NOT NULL DEFAULT 0,
    psk_next         TEXT,
    psk_previous     TEXT,
    rotation_phase   TEXT,
    rotation_version INTEGER NOT NULL DEFAULT 0,
    rotation_since   INTEGER NOT NULL DEFAULT 0,
    net6             TEXT,
    CHECK ((net IS NULL) = (prefix IS NULL)),
    CHECK (net IS NOT NULL OR net6 IS NOT NULL)
);
INSERT INTO segments_new (id, name, net, prefix, default_action, psk, psk_version, version,
    created_at, policy, policy_version, psk_next, psk_previous, rotation_phase,
    rotation_version, rotation_since, net6)
SELECT id, name, net, prefix, default_action, psk, psk_version, version,
    created_at, policy, policy_version, psk_next, psk_previous, rotation_phase,
    rotation_version, rotation_since, net6
FROM segments;

CREATE TABLE members_new (
    id                TEXT PRIMARY KEY,
    node_id           TEXT NOT NULL REFERENCES nodes (id),
    segment_id        TEXT NOT NULL REFERENCES segments_new (id),
    name              TEXT NOT NULL,
    workload          TEXT NOT NULL,
    address           BIGINT,
    public_key        TEXT NOT NULL,
    listen_port       INTEGER NOT NULL,
    endpoints         TEXT NOT NULL,
    labels            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    quarantined_until INTEGER,
    quarantine_reason TEXT,
    address6          TEXT,
    UNIQUE (segment_id, address),
    UNIQUE (segment_id, name),
    UNIQUE (segment_id, public_key),
    UNIQUE (node_id, segment_id, workload),
    CHECK (address IS NOT NULL OR address6 IS NOT NULL)
);
INSERT INTO members_new (id, node_id, segment_id, name, workload, address, public_key,
    listen_port, endpoints, labels, created_at, quarantined_until, quarantine_reason, address6)
SELECT id, node_id, segment_id, name, workload, address, public_key,
    listen_port, endpoints, labels, created_at, quarantined_until, quarantine_reason, address6
FROM members;

DROP TABLE members;
DROP TABLE segments;
ALTER TABLE segments_new RENAME TO segments;
ALTER TABLE members_new RENAME TO members;

CREATE INDEX members_node ON members (node_id);
CREATE INDEX members_quarantined ON members (quarantined_until) WHERE quarantined_until IS NOT NULL;
CREATE UNIQUE INDEX members_address6 ON members (segment_id, address6) WHERE address6 IS NOT NULL;
