-- PostgreSQL twin of migrations/0006_quarantine.sql: keep the two in step.
-- Automated quarantine (issue 17): a member cut off from every peer of its segment until
-- this time (unix seconds), with why. The coordinator's expiry timer clears it; being a
-- column, it survives a restart.

ALTER TABLE members ADD COLUMN quarantined_until BIGINT;
ALTER TABLE members ADD COLUMN quarantine_reason TEXT;
CREATE INDEX members_quarantined ON members (quarantined_until) WHERE quarantined_until IS NOT NULL;
