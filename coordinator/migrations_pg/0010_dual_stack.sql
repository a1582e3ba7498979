-- PostgreSQL twin of migrations/0010_dual_stack.sql: keep the two in step.
-- Dual-stack segments (issue 16): a segment may carry an IPv6 prefix next to its IPv4 one,
-- and each of its members then holds an address from it. Addresses are stored in their
-- canonical text form (RFC 5952), which sorts and compares exactly within one prefix.

ALTER TABLE segments ADD COLUMN net6 TEXT;
ALTER TABLE members ADD COLUMN address6 TEXT;
CREATE UNIQUE INDEX members_address6 ON members (segment_id, address6) WHERE address6 IS NOT NULL;

-- Released IPv6 addresses, held back for the same quarantine as the IPv4 ones.
CREATE TABLE released_addresses6 (
    segment_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    released_at BIGINT NOT NULL,
    PRIMARY KEY (segment_id, address)
);
