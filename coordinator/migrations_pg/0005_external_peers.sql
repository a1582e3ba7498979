-- PostgreSQL twin of migrations/0005_external_peers.sql: keep the two in step.
-- External members (issue 6): stock WireGuard devices that join a segment without an
-- agent. They are ordinary rows of `members` (so IPAM, name and key uniqueness, netmaps,
-- policies and segment deletion treat them like any member), owned by one synthetic node
-- row of kind 'external'. That row has no credential (an empty hash matches no secret),
-- an empty name (netmaps show `node: ""` for external peers) and is hidden from every
-- node query, which selects kind 'agent' only.

ALTER TABLE nodes ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';

INSERT INTO nodes (id, name, public_key, cred_hash, token_id, segments, labels, endpoints,
                   created_at, version, kind)
VALUES ('external', '', '', '', '', '[]', '{}', '[]', 0, 0, 'external');
