-- PostgreSQL twin of migrations/0003_access.sql: keep the two in step.
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

-- Nothing may edit or delete an audit record, not even a bug in the coordinator
-- (TRUNCATE included, which skips row triggers).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE events (
    id      BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    data    TEXT NOT NULL
);
