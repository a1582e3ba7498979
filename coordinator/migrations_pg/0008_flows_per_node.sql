-- PostgreSQL twin of migrations/0008_flows_per_node.sql: keep the two in step.
-- Flow rows are capped per node (issue 15, item 2): find a node's oldest rows quickly.
CREATE INDEX flows_node ON flows (node_id, id);
