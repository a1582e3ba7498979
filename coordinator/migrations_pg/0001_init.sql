-- PostgreSQL twin of migrations/0001_init.sql: keep the two in step.
-- segwire coordinator schema, version 1 (PostgreSQL twin of migrations/0001_init.sql):
-- text ids made by the coordinator, BIGINT unix seconds, JSON kept as TEXT.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('version', 0);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    role        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE segments (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    net            BIGINT NOT NULL,
    prefix         BIGINT NOT NULL,
    default_action TEXT NOT NULL,
    psk            TEXT NOT NULL,
    psk_version    BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    segments    TEXT NOT NULL,
    labels      TEXT NOT NULL,
    uses        BIGINT NOT NULL,
    uses_left   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    cred_hash   TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    segments    TEXT NOT NULL,
    labels      TEXT NOT NULL,
    endpoints   TEXT NOT NULL,
    observed    TEXT,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT,
    revoked_at  BIGINT,
    version     BIGINT NOT NULL
);
CREATE UNIQUE INDEX nodes_live_name ON nodes (name) WHERE revoked_at IS NULL;

CREATE TABLE members (
    id          TEXT PRIMARY KEY,
    node_id     TEXT NOT NULL REFERENCES nodes (id),
    segment_id  TEXT NOT NULL REFERENCES segments (id),
    name        TEXT NOT NULL,
    workload    TEXT NOT NULL,
    address     BIGINT NOT NULL,
    public_key  TEXT NOT NULL,
    listen_port BIGINT NOT NULL,
    endpoints   TEXT NOT NULL,
    labels      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (segment_id, address),
    UNIQUE (segment_id, name),
    UNIQUE (segment_id, public_key),
    UNIQUE (node_id, segment_id, workload)
);
CREATE INDEX members_node ON members (node_id);

CREATE TABLE released_addresses (
    segment_id  TEXT NOT NULL,
    address     BIGINT NOT NULL,
    released_at BIGINT NOT NULL,
    PRIMARY KEY (segment_id, address)
);
