-- Cluster-wide concurrency caps per kind (issue 14): at most `cap` jobs of a kind are
-- 'processing' at once, across every worker and host. The Rust side is
-- crates/shared/src/engine/kind_caps.rs (the table) and crates/shared/src/engine/state/capped.rs
-- (the claim); the model is described there.
--
-- The slot is the job row itself: a job claimed under a cap is marked `capped` and counts while
-- it is 'processing'. A crashed worker's job stays 'processing' until its redelivery claims it
-- again (taking back the same slot) or the sweeper requeues it, so no slot can leak. A delivery
-- that finds the kind full parks its message here (capped_waiters) and is acked; the job stays
-- 'queued'. Whenever a capped run leaves 'processing', the trigger below hands the oldest
-- waiters, up to the free slots, to the outbox. Claims and releases both take the kind's row
-- lock in kind_caps first, so a claim that saw "full" and a release that saw "no waiter"
-- cannot pass each other: whichever comes second sees what the first committed.

-- One row per capped kind, written by workers at start-up from what their kinds declare
-- (last writer wins) and read by every claim of the kind.
CREATE TABLE kind_caps (
    kind       text        PRIMARY KEY,
    cap        integer     NOT NULL CHECK (cap >= 1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

-- Set by a claim under a cap: only those runs fire the release trigger, so uncapped kinds pay
-- nothing for caps. It stays set after the run (a later claim of the same job resets nothing).
ALTER TABLE jobs ADD COLUMN capped boolean NOT NULL DEFAULT false;
-- The running count of a kind, read under its lock by every capped claim and release.
CREATE INDEX jobs_capped_running_idx ON jobs (kind) WHERE capped AND status = 'processing';

-- Deliveries that found their kind full, in arrival order, with their message exactly as it
-- will be published again. `released_at` is set when the message went to the outbox: the
-- waiter then holds a reservation (it counts as running) until its delivery claims the job, or
-- until the reservation expires (a message lost on the way), when the next pump releases it again.
CREATE TABLE capped_waiters (
    job_id        uuid        PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind          text        NOT NULL,
    seq           bigserial   NOT NULL,
    message       bytea       NOT NULL,
    waiting_since timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_at   timestamptz
);
CREATE INDEX capped_waiters_kind_idx ON capped_waiters (kind, seq);

-- How long a released waiter's slot stays reserved for its message (seconds).
CREATE FUNCTION burrow_cap_reservation() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '30 seconds' $$;

-- Releases the oldest waiters of kind `k` up to its free slots (every waiter if the kind has no
-- cap any more) into the outbox, under the kind's row lock. Returns how many it released.
CREATE FUNCTION burrow_pump_capped(k text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    busy bigint;
    released integer := 0;
    w record;
BEGIN
    SELECT cap INTO lim FROM kind_caps WHERE kind = k FOR UPDATE;
    -- Each statement below takes a new snapshot (READ COMMITTED, volatile function), after the
    -- lock: it sees every claim and release that held the lock before.
    SELECT (SELECT count(*) FROM jobs WHERE kind = k AND capped AND status = 'processing')
         + (SELECT count(*) FROM capped_waiters
            WHERE kind = k AND released_at > clock_timestamp() - burrow_cap_reservation())
      INTO busy;
    FOR w IN
        SELECT job_id, message FROM capped_waiters
        WHERE kind = k
          AND (released_at IS NULL OR released_at <= clock_timestamp() - burrow_cap_reservation())
        ORDER BY seq
        LIMIT CASE WHEN lim IS NULL THEN NULL ELSE greatest(lim - busy, 0) END
    LOOP
        INSERT INTO outbox (job_id, message) VALUES (w.job_id, w.message);
        UPDATE capped_waiters SET released_at = clock_timestamp() WHERE job_id = w.job_id;
        released := released + 1;
    END LOOP;
    IF released > 0 THEN
        -- The relays' wake-up (enqueue.rs OUTBOX_CHANNEL), delivered on commit.
        PERFORM pg_notify('burrow_outbox', '');
    END IF;
    RETURN released;
END;
$$;

CREATE FUNCTION burrow_capped_run_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM burrow_pump_capped(NEW.kind);
    RETURN NULL;
END;
$$;

-- Whenever a capped run leaves 'processing' (succeeded, failed, retrying, snoozed, interrupted,
-- requeued by the sweeper, dead, cancelled), in the transaction that moves it: a waiter is
-- released exactly once per freed slot, and never by a transaction that rolls back. Every
-- other update of jobs is filtered out by WHEN without calling the function.
CREATE TRIGGER jobs_release_capped
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (OLD.capped AND OLD.status = 'processing' AND NEW.status <> 'processing')
    EXECUTE FUNCTION burrow_capped_run_ended();
