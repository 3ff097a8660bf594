-- Failure semantics: retry/dead states on jobs, and the transactional outbox.

-- 'retrying': a transient failure; the next attempt waits in a delay queue until next_attempt_at.
-- 'dead': retries exhausted (or the message was poison); the message rests in the DLQ.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'processing', 'retrying', 'succeeded', 'failed', 'dead'));

-- When the delay queue hands the job back (approximate: TTL plus jitter), shown to users.
ALTER TABLE jobs ADD COLUMN next_attempt_at timestamptz;
-- The latest transient error, kept while retrying and on 'dead' (message keeps the final word).
ALTER TABLE jobs ADD COLUMN last_error text;

-- Transactional outbox: the api writes the job and its message in ONE transaction; a relay
-- publishes pending rows with publisher confirms and stamps published_at. A crash or a broker
-- outage between the database write and the publish therefore never strands a job in 'queued'.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    job_id       uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- The encoded JobMessage, exactly as it will be published.
    message      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay's scan: pending rows in insertion order; published rows drop out of the index.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
