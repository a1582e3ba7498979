-- PostgreSQL twin of migrations/0009_psk_rotation.sql: keep the two in step.
-- Make-before-break rotation of a segment's preshared key (issue 13). A rotation has two
-- phases: `accepting` (psk_next published and answered, psk still used to initiate) and
-- `switched` (psk is the new key, psk_previous still answered). rotation_version is the
-- segment version the phase began at: a phase ends when every live node of the segment
-- has applied a netmap at or above it, or rotation_since + the grace period has passed.

ALTER TABLE segments ADD COLUMN psk_next TEXT;
ALTER TABLE segments ADD COLUMN psk_previous TEXT;
ALTER TABLE segments ADD COLUMN rotation_phase TEXT;
ALTER TABLE segments ADD COLUMN rotation_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE segments ADD COLUMN rotation_since BIGINT NOT NULL DEFAULT 0;
