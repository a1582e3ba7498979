-- PostgreSQL twin of migrations/0007_member_name_claims.sql: keep the two in step.
-- Member names as identities (issue 15, item 1). A member name in a segment belongs to
-- the node that held it: while the member exists, for the address quarantine after it
-- is released, and for as long as the segment's policy names it (until that node is
-- revoked). `released_at` is NULL while a member holds the name.

CREATE TABLE member_name_claims (
    segment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    node_id TEXT NOT NULL,
    released_at BIGINT,
    PRIMARY KEY (segment_id, name)
);

INSERT INTO member_name_claims (segment_id, name, node_id, released_at)
SELECT segment_id, name, node_id, NULL FROM members WHERE node_id <> 'external';
