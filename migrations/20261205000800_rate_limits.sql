-- Rate limits per kind and per key (issue 14): at most `rate` jobs of a kind per `period`, for
-- each key a kind's handler extracts from the payload (the target host of a webhook), with a
-- burst of `burst`, shared by every worker and host. The Rust side is
-- crates/shared/src/engine/rate_limits.rs, where the model is described.
--
-- GCRA (virtual scheduling) with reservations: each (kind, key) has a theoretical arrival time
-- `tat`. A delivery reserves the slot max(now, tat - (burst - 1) * T) and moves tat to
-- max(tat, now) + T, where T = period / rate. There is no permit to give back, only times: a
-- reservation whose job dies is an unused slot, so a crash leaks nothing.

-- One row per rate-limited kind, written by workers at start-up (last writer wins) and read by
-- every reservation of the kind: every replica enforces the one value the table holds.
CREATE TABLE kind_rate_limits (
    kind       text        PRIMARY KEY,
    rate       integer     NOT NULL CHECK (rate >= 1),
    period_ms  bigint      NOT NULL CHECK (period_ms >= 1),
    burst      integer     NOT NULL CHECK (burst >= 1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

-- The theoretical arrival time of each (kind, key). A key no job used for a while keeps a
-- past `tat`, which reserves like a new key; the sweeper may delete such rows.
CREATE TABLE rate_limit_state (
    kind text        NOT NULL,
    key  text        NOT NULL,
    tat  timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);

-- The slot reserved for the job's next run; cleared by the claim that runs it, so a retry or
-- a snoozed job reserves again. A delivery finding a slot here does not reserve another.
ALTER TABLE jobs ADD COLUMN rate_slot_at timestamptz;

-- Messages waiting for their reserved slot, exactly as they will be published again. Workers
-- move the due ones to the outbox (burrow_release_rate_waiters): a waiting job goes through the
-- broker once when enqueued and once when due, never on a timer.
CREATE TABLE rate_waiters (
    job_id        uuid        PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind          text        NOT NULL,
    due_at        timestamptz NOT NULL,
    message       bytea       NOT NULL,
    waiting_since timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rate_waiters_due_idx ON rate_waiters (due_at);

-- Reserves the next slot of (k, rkey) and returns it; `clock_timestamp()` when the kind has no
-- limit. The row lock serialises reservations of one key across replicas, and `now` is read
-- after it, so a reservation that waited for the lock does not use a stale clock.
CREATE FUNCTION burrow_rate_reserve(k text, rkey text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    t interval;
    b integer;
    old timestamptz;
    n timestamptz;
BEGIN
    SELECT make_interval(secs => period_ms / 1000.0 / rate), burst INTO t, b
    FROM kind_rate_limits WHERE kind = k;
    IF NOT FOUND THEN
        RETURN clock_timestamp();
    END IF;
    INSERT INTO rate_limit_state (kind, key, tat) VALUES (k, rkey, '-infinity')
    ON CONFLICT (kind, key) DO NOTHING;
    SELECT tat INTO old FROM rate_limit_state WHERE kind = k AND key = rkey FOR UPDATE;
    n := clock_timestamp();
    UPDATE rate_limit_state SET tat = greatest(old, n) + t WHERE kind = k AND key = rkey;
    RETURN greatest(n, old - (b - 1) * t);
END;
$$;

-- Moves up to `lim` waiters due within `ahead` to the outbox (oldest slot first) and wakes the
-- relays. Released `ahead` of its slot, a message covers the trip through the relay and the
-- broker, and the worker receiving it waits out the rest before its claim. Several workers may
-- call it at once: SKIP LOCKED hands each waiter to one of them.
CREATE FUNCTION burrow_release_rate_waiters(lim integer, ahead interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    released integer;
BEGIN
    WITH due AS (
        DELETE FROM rate_waiters WHERE job_id IN (
            SELECT job_id FROM rate_waiters WHERE due_at <= clock_timestamp() + ahead
            ORDER BY due_at LIMIT lim FOR UPDATE SKIP LOCKED)
        RETURNING job_id, message),
    sent AS (INSERT INTO outbox (job_id, message) SELECT job_id, message FROM due RETURNING 1)
    SELECT count(*) INTO released FROM sent;
    IF released > 0 THEN
        -- The relays' wake-up (enqueue.rs OUTBOX_CHANNEL), delivered on commit.
        PERFORM pg_notify('burrow_outbox', '');
    END IF;
    RETURN released;
END;
$$;
