-- Queues per kind (issue 14): the queue a job travels through, so whatever re-enqueues it from
-- its row (the sweeper, the api's retry) sends it back to that queue. 'default' is the queue of
-- the work queues that predate queues per kind ({p}.jobs.work, {p}.jobs.work.high). A constant
-- default makes this a catalog-only change (no table rewrite). See
-- crates/shared/src/engine/topology.rs, "Queues per kind".
ALTER TABLE jobs ADD COLUMN queue text NOT NULL DEFAULT 'default';
