-- PostgreSQL twin of migrations/0011_cluster.sql: keep the two in step.
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
