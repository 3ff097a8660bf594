-- Progress of running jobs moves out of the jobs row (found by the import benchmark).
--
-- The worker flushed rows-done to jobs every 250 ms while the import's COPY was checking its
-- foreign key to that same row once per imported row (each check locks the row FOR KEY SHARE).
-- An UPDATE of a row under such locks gives it a MultiXact and a new version that cannot be
-- pruned while the import runs, and every later check looks both up: +2.4 s on a 1M-row import
-- (bench/repro-fk-progress.sh). Progress now lives here, with no foreign key on purpose — one
-- would lock the jobs row just the same. The worker deletes a job's row when the run ends
-- (copying the final figures into jobs.progress_done/progress_total) or the job is claimed
-- again; retention removes rows whose job is gone.
--
-- UNLOGGED: progress is rewritten four times a second and worth nothing after a crash (the job
-- re-runs and reports afresh), so it skips the WAL.
CREATE UNLOGGED TABLE job_progress (
    job_id     uuid        PRIMARY KEY,
    done       bigint      NOT NULL,
    total      bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
