-- Workflows (issue 15): jobs that wait for other jobs, batches, and outputs passed along.
--
-- A job created with parents (`depends_on`) starts 'awaiting': it has a row, history and a
-- message, but the message is held back (held_messages) instead of going to the outbox. When
-- its last parent ends, the trigger below moves it to 'queued' and hands its message to the
-- outbox, in the transaction that ended that parent — so a child is released exactly once,
-- whichever replica ends which parent, and never if that transaction rolls back. A parent that
-- ends failed, dead or cancelled cancels the child at once (with the reason), unless the child
-- was created with run_on_failure; the cancelled child then cancels its own children the same way.

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('awaiting', 'queued', 'processing', 'retrying', 'succeeded', 'failed', 'dead', 'cancelled'));

-- Parents not yet ended (0 for a job without parents). Decremented under the child's row lock,
-- so two parents ending at once on two replicas are counted one after the other.
ALTER TABLE jobs ADD COLUMN awaiting_parents integer NOT NULL DEFAULT 0;
-- Run once every parent has ended, whatever their outcome (a batch's on_complete callback).
ALTER TABLE jobs ADD COLUMN run_on_failure boolean NOT NULL DEFAULT false;
-- Set once a job becomes somebody's parent: only those jobs fire the trigger's function, so
-- jobs without children pay nothing for workflows.
ALTER TABLE jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
-- What a successful run returned (small JSON, read by its children).
ALTER TABLE jobs ADD COLUMN output jsonb;

CREATE TABLE job_dependencies (
    child_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- The parent's status when it first ended; NULL until then. A parent restarted later and
    -- ending again does not count twice.
    parent_outcome text,
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX job_dependencies_parent_idx ON job_dependencies (parent_id);

-- The first message of an awaiting job, exactly as it will be published, until its release.
CREATE TABLE held_messages (
    job_id  uuid  PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    message bytea NOT NULL
);

-- A batch: member jobs (jobs.batch_id) and optional callbacks, which are jobs awaiting every
-- member (on_success: all must succeed; on_complete: run_on_failure).
CREATE TABLE batches (
    id          uuid        PRIMARY KEY,
    user_id     text,
    description text,
    members     integer     NOT NULL,
    on_success  uuid        REFERENCES jobs (id) ON DELETE SET NULL,
    on_complete uuid        REFERENCES jobs (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE jobs ADD COLUMN batch_id uuid REFERENCES batches (id) ON DELETE SET NULL;
CREATE INDEX jobs_batch_idx ON jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Resolves the edges from `parent` (which just ended `outcome`) to its children: each child
-- counts one parent less; a child whose last parent ended is released, one that may not run
-- after `outcome` is cancelled, and so are its own descendants, breadth first in this one call
-- (a recursion through the trigger would hit max_stack_depth on a chain of ~100 jobs).
-- Idempotent per edge: only edges not yet resolved count. Called by the trigger, and by
-- enqueue for parents that had ended before the child existed.
CREATE FUNCTION burrow_resolve_dependents(parent uuid, outcome text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ended uuid[] := ARRAY[parent];
    outcomes text[] := ARRAY[outcome];
    next integer := 1;
    edge record;
    child record;
    released integer := 0;
BEGIN
    WHILE next <= cardinality(ended) LOOP
        -- Children in id order: every transaction locks shared children in the same order
        -- (two members of one batch ending at once on two replicas both reach its callbacks).
        FOR edge IN
            SELECT d.child_id FROM job_dependencies d
            WHERE d.parent_id = ended[next] AND d.parent_outcome IS NULL
            ORDER BY d.child_id
            FOR UPDATE
        LOOP
            UPDATE job_dependencies SET parent_outcome = outcomes[next]
            WHERE parent_id = ended[next] AND child_id = edge.child_id;
            UPDATE jobs SET awaiting_parents = awaiting_parents - 1
            WHERE id = edge.child_id AND status = 'awaiting'
            RETURNING id, awaiting_parents, run_on_failure, attempts INTO child;
            IF NOT FOUND THEN
                CONTINUE;  -- cancelled by an earlier parent, or by a user
            END IF;
            IF outcomes[next] <> 'succeeded' AND NOT child.run_on_failure THEN
                UPDATE jobs SET status = 'cancelled', awaiting_parents = 0,
                       message = format('Cancelled: parent %s ended %s', ended[next], outcomes[next]),
                       completed_at = clock_timestamp()
                WHERE id = child.id;
                DELETE FROM held_messages WHERE job_id = child.id;
                INSERT INTO job_events (job_id, event, attempt, detail)
                VALUES (child.id, 'cancelled', child.attempts,
                        format('parent %s ended %s', ended[next], outcomes[next]));
                ended := ended || child.id;
                outcomes := outcomes || 'cancelled'::text;
            ELSIF child.awaiting_parents <= 0 THEN
                UPDATE jobs SET status = 'queued', message = NULL WHERE id = child.id;
                INSERT INTO outbox (job_id, message)
                SELECT job_id, message FROM held_messages WHERE job_id = child.id;
                DELETE FROM held_messages WHERE job_id = child.id;
                INSERT INTO job_events (job_id, event, attempt, detail)
                VALUES (child.id, 'queued', child.attempts, 'every parent has ended');
                released := released + 1;
            END IF;
        END LOOP;
        next := next + 1;
    END LOOP;
    IF released > 0 THEN
        -- The relays' wake-up (enqueue.rs OUTBOX_CHANNEL), delivered on commit.
        PERFORM pg_notify('burrow_outbox', '');
    END IF;
END;
$$;

CREATE FUNCTION burrow_parent_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM burrow_resolve_dependents(NEW.id, NEW.status);
    RETURN NULL;
END;
$$;

-- Row-level, and only for parents entering a terminal status: every other update of jobs
-- (claims, progress, retries) is filtered out by WHEN without calling the function. Not for
-- the cancellations the function makes itself (trigger depth 1): it walks those on its own.
CREATE TRIGGER jobs_release_dependents
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents
          AND NEW.status IN ('succeeded', 'failed', 'dead', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status
          AND pg_trigger_depth() < 1)
    EXECUTE FUNCTION burrow_parent_ended();
