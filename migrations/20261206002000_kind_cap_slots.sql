-- Cluster-wide caps per kind, second model (issue 14, point 6): a cap is `cap` slot rows, not a
-- count under the kind's one row lock. The first model (20261205000700_kind_caps.sql) made every
-- claim and every end of a capped run wait for the kind's `kind_caps` row lock and count the
-- kind's running jobs; under load a cap that was never reached cost 90 % of the throughput.
-- The Rust side, and the reasons, are in crates/shared/src/engine/kind_caps.rs.
--
-- - A claim takes a free slot row with FOR UPDATE SKIP LOCKED: claims of one kind take
--   different rows and never wait for each other (no count, no shared row).
-- - A run's end frees its slot, or hands it straight to the oldest waiter (a reservation), in
--   the transaction that moves the job out of 'processing' (the trigger below).
-- - The no-lost-wake-up rule: a claim that finds no free slot parks only under the kind's
--   EXCLUSIVE advisory lock (burrow_cap_lock), and every end takes the SHARED one before it
--   touches its slot. Ends never wait for each other (shared); a parking claim waits for the
--   ends in flight to commit, and ends that start after it wait for the park to commit. So a
--   claim that saw "full" and an end that saw "no waiter" cannot pass each other: whichever
--   commits second ran its check after the other's commit. The claims that find a slot take no
--   kind lock at all.

-- Slot `slot` (1..cap) of `kind`, held by `job_id`: a job running under the cap
-- (`reserved_until` NULL), or a released waiter whose message is on its way
-- (`reserved_until` set; past it, the slot is free again). NULL: free.
CREATE TABLE kind_cap_slots (
    kind           text        NOT NULL,
    slot           integer     NOT NULL CHECK (slot >= 1),
    job_id         uuid,
    reserved_until timestamptz,
    PRIMARY KEY (kind, slot)
);
-- A claim finds a free slot here without reading the busy ones.
CREATE INDEX kind_cap_slots_free_idx ON kind_cap_slots (kind, slot) WHERE job_id IS NULL;
-- A run's end (and a redelivery) finds its own slot by job.
CREATE INDEX kind_cap_slots_job_idx ON kind_cap_slots (job_id) WHERE job_id IS NOT NULL;

-- The count the first model read on every claim is no longer read on a hot path.
DROP INDEX jobs_capped_running_idx;

-- The kind's lock for the wake-up rule above: the two-key advisory lock space (class 7301),
-- apart from the jobs' one-key locks (crates/shared/src/engine/job_lock.rs). A hash collision
-- of two kinds only makes them wait for each other now and then.
CREATE FUNCTION burrow_cap_lock(k text, exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(7301, hashtext(k));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(7301, hashtext(k));
    END IF;
END;
$$;

-- Makes kind `k`'s slot rows match its cap: adds the missing ones, drops the free ones above it
-- (all of them when the cap is gone). Slots above the cap still held are dropped when their
-- holder lets go (burrow_cap_let_go). Under the kind's exclusive lock.
CREATE FUNCTION burrow_cap_resize(k text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
BEGIN
    PERFORM burrow_cap_lock(k, true);
    SELECT cap INTO lim FROM kind_caps WHERE kind = k;
    INSERT INTO kind_cap_slots (kind, slot)
    SELECT k, s FROM generate_series(1, coalesce(lim, 0)) AS s
    ON CONFLICT DO NOTHING;
    DELETE FROM kind_cap_slots
    WHERE kind = k AND slot > coalesce(lim, 0)
      AND (job_id IS NULL OR reserved_until < clock_timestamp());
END;
$$;

-- Gives slot `s` of kind `k` to waiter `w` (its job and message): a reservation until its
-- message comes back, the message to the outbox, the relays woken on commit.
CREATE FUNCTION burrow_cap_hand(k text, s integer, w uuid, msg bytea) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
BEGIN
    UPDATE kind_cap_slots SET job_id = w, reserved_until = now_ + burrow_cap_reservation()
    WHERE kind = k AND slot = s;
    UPDATE capped_waiters SET released_at = now_ WHERE job_id = w;
    INSERT INTO outbox (job_id, message) VALUES (w, msg);
    -- The relays' wake-up (enqueue.rs OUTBOX_CHANNEL), delivered on commit.
    PERFORM pg_notify('burrow_outbox', '');
END;
$$;

-- The oldest waiter of `k` not yet released (or whose reservation expired), locked; none if
-- another transaction holds it (it is being released or claimed right now).
CREATE FUNCTION burrow_cap_next_waiter(k text, OUT w uuid, OUT msg bytea)
LANGUAGE sql AS $$
    SELECT job_id, message FROM capped_waiters
    WHERE kind = k
      AND (released_at IS NULL OR released_at <= clock_timestamp() - burrow_cap_reservation())
    ORDER BY seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED
$$;

-- Job `j` of kind `k` lets go of its slot (its run left 'processing', or it was a released
-- waiter that ended before its message came back): the slot goes to the oldest waiter, or is
-- freed, or is dropped if it lies above the cap. Under the kind's SHARED lock, so ends do not
-- wait for each other. Every slot `j` holds is let go: a waiter released by a pump while its
-- own delivery took a free slot in the group claim holds two until its run ends. Returns how
-- many slots `j` held.
CREATE FUNCTION burrow_cap_let_go(k text, j uuid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    s integer;
    lim integer;
    nxt record;
    held integer := 0;
BEGIN
    -- Before the slot rows: a claim parking under the exclusive lock is then either committed
    -- (its waiter is seen below, in a snapshot taken after the lock) or not started.
    PERFORM burrow_cap_lock(k, false);
    SELECT cap INTO lim FROM kind_caps WHERE kind = k;
    -- No ORDER BY: it would tempt the planner (generic plan, statistics left behind by a
    -- burst) into reading the kind's every slot in key order instead of the job's one or two
    -- by kind_cap_slots_job_idx: 1 ms an end with a cap of 10,000, the bottleneck of bench
    -- row 12. Every end holds its own job's row lock, so two never lock these rows together.
    FOR s IN
        SELECT slot FROM kind_cap_slots
        WHERE job_id = j AND kind = k
          AND (reserved_until IS NULL OR reserved_until > clock_timestamp())
        FOR UPDATE
    LOOP
        held := held + 1;
        IF s > coalesce(lim, 0) THEN
            DELETE FROM kind_cap_slots WHERE kind = k AND slot = s;
            CONTINUE;
        END IF;
        SELECT * INTO nxt FROM burrow_cap_next_waiter(k);
        IF nxt.w IS NOT NULL THEN
            PERFORM burrow_cap_hand(k, s, nxt.w, nxt.msg);
        ELSE
            UPDATE kind_cap_slots SET job_id = NULL, reserved_until = NULL
            WHERE kind = k AND slot = s;
        END IF;
    END LOOP;
    RETURN held;
END;
$$;

-- Job `j` of kind `k` (its row locked by the caller, runnable) takes a slot: its own (a
-- redelivery after a crash, or the reservation of a released waiter), else a free one, if no
-- waiter is ahead of it. Returns true (taken), false (none: the caller parks under the
-- exclusive lock), NULL (the kind has no cap: claim without one). Takes no kind lock.
CREATE FUNCTION burrow_cap_take(k text, j uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    s integer;
BEGIN
    SELECT cap INTO lim FROM kind_caps WHERE kind = k;
    IF lim IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE kind_cap_slots SET reserved_until = NULL
    WHERE kind = k AND slot = (
        SELECT slot FROM kind_cap_slots
        WHERE job_id = j AND kind = k
          AND (reserved_until IS NULL OR reserved_until > clock_timestamp())
        ORDER BY reserved_until NULLS FIRST, slot
        LIMIT 1
        FOR UPDATE)
    RETURNING slot INTO s;
    IF s IS NOT NULL THEN
        RETURN true;
    END IF;
    IF EXISTS (
        SELECT 1 FROM capped_waiters
        WHERE kind = k AND job_id <> j
          AND (released_at IS NULL OR released_at <= clock_timestamp() - burrow_cap_reservation())
          AND seq < coalesce((SELECT seq FROM capped_waiters WHERE job_id = j),
                             9223372036854775807)
    ) THEN
        RETURN false;
    END IF;
    SELECT slot INTO s FROM kind_cap_slots
    WHERE kind = k AND job_id IS NULL AND slot <= lim
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF s IS NULL THEN
        -- An expired reservation (its message was lost): free for anyone.
        SELECT slot INTO s FROM kind_cap_slots
        WHERE kind = k AND reserved_until < clock_timestamp() AND slot <= lim
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
    END IF;
    IF s IS NULL THEN
        RETURN false;
    END IF;
    UPDATE kind_cap_slots SET job_id = j, reserved_until = NULL WHERE kind = k AND slot = s;
    RETURN true;
END;
$$;

-- Releases the oldest waiters of kind `k` into its free slots (every waiter if the kind has no
-- cap any more), under the kind's exclusive lock. Returns how many it released.
CREATE OR REPLACE FUNCTION burrow_pump_capped(k text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    released integer := 0;
    s integer;
    nxt record;
BEGIN
    PERFORM burrow_cap_lock(k, true);
    SELECT cap INTO lim FROM kind_caps WHERE kind = k;
    LOOP
        SELECT * INTO nxt FROM burrow_cap_next_waiter(k);
        EXIT WHEN nxt.w IS NULL;
        IF lim IS NULL THEN
            UPDATE capped_waiters SET released_at = clock_timestamp() WHERE job_id = nxt.w;
            INSERT INTO outbox (job_id, message) VALUES (nxt.w, nxt.msg);
            PERFORM pg_notify('burrow_outbox', '');
        ELSE
            SELECT slot INTO s FROM kind_cap_slots
            WHERE kind = k AND slot <= lim
              AND (job_id IS NULL OR reserved_until < clock_timestamp())
            ORDER BY slot
            LIMIT 1
            FOR UPDATE SKIP LOCKED;
            EXIT WHEN s IS NULL;
            PERFORM burrow_cap_hand(k, s, nxt.w, nxt.msg);
        END IF;
        released := released + 1;
    END LOOP;
    RETURN released;
END;
$$;

CREATE OR REPLACE FUNCTION burrow_capped_run_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM burrow_cap_let_go(NEW.kind, NEW.id);
    RETURN NULL;
END;
$$;

-- The conversion: slots for every cap in force, held by the capped runs in 'processing' and by
-- the reservations of released waiters (as the first model counted them), oldest first. Runs
-- above a cap (it was lowered) keep slots above it, dropped when they end.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT kind FROM kind_caps ORDER BY kind LOOP
        PERFORM burrow_cap_resize(c.kind);
    END LOOP;
END;
$$;
WITH holders AS (
    SELECT kind, id AS job_id, NULL::timestamptz AS reserved_until, started_at AS since
    FROM jobs WHERE capped AND status = 'processing' AND kind IN (SELECT kind FROM kind_caps)
    UNION ALL
    SELECT kind, job_id, released_at + burrow_cap_reservation(), released_at
    FROM capped_waiters
    WHERE released_at > clock_timestamp() - burrow_cap_reservation()
      AND kind IN (SELECT kind FROM kind_caps)
),
numbered AS (
    SELECT kind, job_id, reserved_until,
           row_number() OVER (PARTITION BY kind ORDER BY since, job_id) AS slot
    FROM holders
)
INSERT INTO kind_cap_slots (kind, slot, job_id, reserved_until)
SELECT kind, slot, job_id, reserved_until FROM numbered
ON CONFLICT (kind, slot) DO UPDATE
    SET job_id = EXCLUDED.job_id, reserved_until = EXCLUDED.reserved_until;
