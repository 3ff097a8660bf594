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

-- One delivery's reservation, in one statement so that the key's row lock is held only for it
-- (and its commit): the job's slot if it holds one, else a new slot of (k, rkey), recorded on
-- the job (`rate_slot_at`, `next_attempt_at`, a `waiting_for_rate` event) when it is not due at
-- once. A slot due within `ahead` is 'run' (due) or 'soon' (the caller waits it out); a later
-- one parks `msg` in rate_waiters ('wait'; a duplicate delivery finds it there already).
CREATE FUNCTION burrow_rate_reserve_job(j uuid, k text, rkey text, msg bytea, ahead interval,
                                        OUT decision text, OUT slot timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    att integer;
    n timestamptz;
BEGIN
    SELECT rate_slot_at, attempts INTO slot, att FROM jobs WHERE id = j FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        decision := 'run';
        RETURN;
    END IF;
    IF slot IS NULL THEN
        slot := burrow_rate_reserve(k, rkey);
        n := clock_timestamp();
        IF slot <= n THEN
            decision := 'run';
            RETURN;
        END IF;
        UPDATE jobs SET rate_slot_at = slot, next_attempt_at = slot WHERE id = j;
        INSERT INTO job_events (job_id, event, attempt, detail)
        VALUES (j, 'waiting_for_rate', att, 'rate limit of kind ' || k
                || coalesce(' key ' || nullif(rkey, ''), '') || ' until ' || slot::text);
    ELSE
        n := clock_timestamp();
    END IF;
    IF slot <= n + ahead THEN
        DELETE FROM rate_waiters WHERE job_id = j;
        decision := CASE WHEN slot <= n THEN 'run' ELSE 'soon' END;
        RETURN;
    END IF;
    INSERT INTO rate_waiters (job_id, kind, due_at, message) VALUES (j, k, slot, msg)
    ON CONFLICT (job_id) DO NOTHING;
    decision := 'wait';
END;
$$;
