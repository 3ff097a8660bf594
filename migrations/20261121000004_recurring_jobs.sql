-- Recurring jobs declared in the worker's config (RECURRING_JOBS): one cursor per schedule.

-- The latest slot of each schedule that has been enqueued (or, on first sight, the time the
-- schedule was first seen: no backfill). Advanced in the same transaction that writes the
-- slot's job and outbox row, under an advisory lock, so each slot runs exactly once however
-- many workers run.
CREATE TABLE recurring_schedules (
    name      text        PRIMARY KEY,
    last_slot timestamptz NOT NULL
);
