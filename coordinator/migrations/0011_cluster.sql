-- Several coordinators on one database (issue 12).
-- The one CA every coordinator sharing the database presents certificates from, so one pin
-- serves them all. One row (id 1), written once: the first start inserts it if absent and
-- every start reads it back. The key is as secret as the segments' preshared keys here.
CREATE TABLE cluster_ca (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    key_pem    TEXT NOT NULL,
    cert_pem   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The coordinators serving this database: each writes its URLs (a JSON array of
-- https://NAME:PORT, one per --advertise name) at start and heartbeats last_seen; a clean
-- shutdown deletes its row. Live means seen recently; join tokens and netmaps list the live ones.
CREATE TABLE coordinators (
    id         TEXT PRIMARY KEY,
    urls       TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- Presence across coordinators: which coordinator last took the node's long-polls
-- (its instance id) and since when it is reported offline, so that `node.offline` and
-- `node.online` are emitted once, by the coordinator the node polled, even when the node
-- moves between coordinators. Written only on PostgreSQL (several coordinators), and only
-- when a node changes coordinator or goes offline or comes back.
ALTER TABLE nodes ADD COLUMN polled_by TEXT;
ALTER TABLE nodes ADD COLUMN offline_at BIGINT;
