-- Flow logs shipped by agents; kept for a bounded time and a bounded number of rows.
CREATE TABLE flows (
    id          INTEGER PRIMARY KEY,
    node_id     TEXT NOT NULL,
    segment     TEXT NOT NULL,
    member      TEXT NOT NULL,
    peer        TEXT,
    direction   TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    src         TEXT NOT NULL,
    dst         TEXT NOT NULL,
    dst_port    INTEGER NOT NULL,
    rule        TEXT,
    count       BIGINT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX flows_segment_seen ON flows (segment, last_seen);
CREATE INDEX flows_received ON flows (received_at);
