-- PostgreSQL twin of migrations/0012_ipv6_only.sql: keep the two in step.
-- IPv6-only segments (issue 16): a segment's IPv4 network and a member's IPv4 address
-- become optional. A segment still holds at least one prefix (net or net6), which the
-- store's rules check; a member holds an address from each prefix its segment has.

ALTER TABLE segments ALTER COLUMN net DROP NOT NULL;
ALTER TABLE segments ALTER COLUMN prefix DROP NOT NULL;
ALTER TABLE segments ADD CONSTRAINT segments_net_prefix CHECK ((net IS NULL) = (prefix IS NULL));
ALTER TABLE segments ADD CONSTRAINT segments_some_prefix CHECK (net IS NOT NULL OR net6 IS NOT NULL);
ALTER TABLE members ALTER COLUMN address DROP NOT NULL;
ALTER TABLE members ADD CONSTRAINT members_some_address CHECK (address IS NOT NULL OR address6 IS NOT NULL);
