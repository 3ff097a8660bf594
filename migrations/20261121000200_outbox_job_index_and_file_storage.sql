-- Found by the benchmarks.

-- Deleting a job cascades into outbox, which had no index on job_id: retention deleting 1,000
-- jobs over a 20,000-row outbox took 1.2 s instead of 40 ms.
CREATE INDEX outbox_job_idx ON outbox (job_id);

-- Uploads are zip files: Postgres's attempt to compress them (pglz) saves nothing and cost
-- ~0.75 s for a 43 MB workbook. EXTERNAL keeps them out of line, uncompressed.
ALTER TABLE job_files ALTER COLUMN content SET STORAGE EXTERNAL;
