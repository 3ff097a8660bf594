-- imported_rows loses its foreign key to jobs (found by the import benchmark, issue 13).
--
-- The key was checked once per imported row: a 1M-row COPY into this table took 6.5 s with it
-- and 2.6 s without it (psql on the bench machine, same rows, primary key kept), so the check
-- cost more than the COPY itself. What it guaranteed is kept by cheaper means:
-- - rows never outlive their job: the statement-level trigger below deletes the rows of every
--   job deleted (retention, DELETE /api/jobs/{id}, a manual DELETE), once per statement;
-- - rows never name a job that is gone: the import locks its job row FOR KEY SHARE once, before
--   its COPY (import/load.rs) — the lock each per-row check took — so a concurrent DELETE of the
--   job waits for the import's commit, and then the trigger removes the rows.
-- TRUNCATE jobs no longer reaches imported_rows; truncate both.
ALTER TABLE imported_rows DROP CONSTRAINT IF EXISTS imported_rows_job_id_fkey;

CREATE FUNCTION burrow_delete_rows_of_deleted_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM imported_rows r USING deleted_jobs d WHERE r.job_id = d.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_delete_imported_rows
    AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION burrow_delete_rows_of_deleted_jobs();
