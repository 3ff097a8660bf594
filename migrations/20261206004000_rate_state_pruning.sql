-- Rate limits (20261205000800_rate_limits.sql) keep one row per (kind, key) in
-- rate_limit_state, and keys come from payloads (a webhook's target host): without pruning the
-- table keeps every key ever seen. A row whose `tat` has passed reserves exactly as no row
-- does (the next slot is `now` either way), so such rows can go at any time; the sweeper's
-- replica deletes those idle for a while (crates/shared/src/engine/rate_limits.rs,
-- `prune_idle`).
--
-- A prune can delete the row a reservation found by its INSERT … ON CONFLICT DO NOTHING before
-- the reservation locks it. The reservation then finds no row to lock, and before this
-- migration it returned `now` without recording the slot: one job over the limit. It now
-- inserts the row again and locks that.
CREATE OR REPLACE FUNCTION burrow_rate_reserve(k text, rkey text) RETURNS timestamptz
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
    LOOP
        INSERT INTO rate_limit_state (kind, key, tat) VALUES (k, rkey, '-infinity')
        ON CONFLICT (kind, key) DO NOTHING;
        SELECT tat INTO old FROM rate_limit_state WHERE kind = k AND key = rkey FOR UPDATE;
        -- Not found: a prune deleted the row between the two statements (it was idle, so a
        -- new one is the same); each round needs another prune to commit in between.
        EXIT WHEN FOUND;
    END LOOP;
    n := clock_timestamp();
    UPDATE rate_limit_state SET tat = greatest(old, n) + t WHERE kind = k AND key = rkey;
    RETURN greatest(n, old - (b - 1) * t);
END;
$$;

-- Deletes the (kind, key) rows whose theoretical arrival time passed more than `idle` ago
-- (they reserve as a missing row does); returns how many. Rows locked by a reservation in
-- flight are skipped, and kept for the next prune.
CREATE FUNCTION burrow_rate_prune(idle interval) RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM rate_limit_state WHERE (kind, key) IN (
            SELECT kind, key FROM rate_limit_state
            WHERE tat < clock_timestamp() - idle
            FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
