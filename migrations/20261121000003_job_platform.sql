-- The job platform: kinds with payloads, progress, results, cancel, history, idempotency, run_at.

-- 'cancelled': stopped on request (queued: at once; processing: at the handler's next batch).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('queued', 'processing', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled'));

-- The kind's typed payload, validated by the api against the kind's handler before insert.
ALTER TABLE jobs ADD COLUMN payload jsonb NOT NULL DEFAULT '{}'::jsonb;
-- 0 (normal) to 9 (most urgent); sent as the AMQP priority property.
ALTER TABLE jobs ADD COLUMN priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9);
-- Not before this time: the message waits in the delay queues until then.
ALTER TABLE jobs ADD COLUMN run_at timestamptz;
-- A client's Idempotency-Key: the same key twice returns the same job. Unique per owner tag.
ALTER TABLE jobs ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (coalesce(user_id, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Progress of the running attempt (rows for imports), flushed by the worker every ~250 ms.
ALTER TABLE jobs ADD COLUMN progress_done bigint;
ALTER TABLE jobs ADD COLUMN progress_total bigint;
-- Set by POST /api/jobs/{id}/cancel on a processing job; the worker watches it.
ALTER TABLE jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;

-- A job's result file (e.g. the .xlsx of an export), written in the job's success transaction.
CREATE TABLE job_results (
    job_id       uuid   PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    file_name    text   NOT NULL,
    content_type text   NOT NULL,
    content      bytea  NOT NULL,
    size_bytes   bigint NOT NULL
);

-- Every state change of a job, in order: the history shown in the job detail.
CREATE TABLE job_events (
    id      bigserial   PRIMARY KEY,
    job_id  uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The new state ('queued', 'processing', …) or an action ('cancel_requested', 'redriven').
    event   text        NOT NULL,
    attempt integer,
    worker  text,
    -- The error or message that came with it.
    detail  text
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);
