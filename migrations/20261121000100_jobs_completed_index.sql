-- The dashboard's throughput chart (GET /api/stats) counts jobs by completed_at over the last
-- 15 minutes, every couple of seconds: a range scan here instead of reading the whole table.
-- Partial: jobs that have not ended (completed_at IS NULL) are never asked for.
CREATE INDEX jobs_completed_idx ON jobs (completed_at) WHERE completed_at IS NOT NULL;
