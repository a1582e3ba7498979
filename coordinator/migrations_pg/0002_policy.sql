-- PostgreSQL twin of migrations/0002_policy.sql: keep the two in step.
-- Segment policies: the current one on the segment, every version kept in history.
ALTER TABLE segments ADD COLUMN policy TEXT;
ALTER TABLE segments ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE policy_history (
    segment_id TEXT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (segment_id, version)
);
