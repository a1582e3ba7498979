-- Access control and monitoring (issue 7): scoped, expiring API keys; the append-only
-- audit log; the event log behind `GET /v1/events` and webhooks. Portable SQL: ids are
-- assigned by the coordinator under its write lock, JSON is kept as TEXT.

ALTER TABLE api_keys ADD COLUMN segments TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;

CREATE TABLE audit_log (
    id      BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    source  TEXT,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Nothing may edit or delete an audit record, not even a bug in the coordinator.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE events (
    id      BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    data    TEXT NOT NULL
);
