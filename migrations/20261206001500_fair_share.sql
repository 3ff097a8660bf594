-- Fair sharing between tenants (issue 14): when relays run with a release window
-- (FAIR_SHARE_WINDOW), the outbox is the waiting room. A relay releases pending messages only
-- while the work queues hold fewer ready messages than the window, and then in turn order:
-- a tenant's (jobs.user_id, the owner tag) decayed count of messages released lately, plus the
-- message's place among the tenant's pending ones. A tenant that has just been served a lot
-- waits behind one that has not. The Rust side and the reasons are in
-- crates/shared/src/engine/fair_share.rs.

-- One row per tenant that had messages released: how many, decayed by half every half-life
-- (a relay setting) as of `updated_at`. Tenants without an owner tag share the row ''.
CREATE TABLE fair_share_usage (
    tenant     text             PRIMARY KEY,
    released   double precision NOT NULL CHECK (released >= 0),
    updated_at timestamptz      NOT NULL DEFAULT clock_timestamp()
);

-- Each pending message's tenant and lane, copied from its job when the row is written, so the
-- relay can take the first few of each tenant from an index instead of ranking the whole
-- backlog. Enqueue writes them itself; the trigger fills them for the other writers (releases
-- of waiters and of dependent jobs, in SQL functions). NULL on rows published before this
-- migration.
ALTER TABLE outbox ADD COLUMN tenant text, ADD COLUMN high boolean;

CREATE FUNCTION burrow_outbox_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce(j.user_id, ''), j.priority >= 5 INTO NEW.tenant, NEW.high
    FROM jobs j WHERE j.id = NEW.job_id;
    NEW.tenant := coalesce(NEW.tenant, '');
    NEW.high := coalesce(NEW.high, false);
    RETURN NEW;
END;
$$;

CREATE TRIGGER outbox_tenant
    BEFORE INSERT ON outbox
    FOR EACH ROW
    WHEN (NEW.tenant IS NULL OR NEW.high IS NULL)
    EXECUTE FUNCTION burrow_outbox_tenant();

UPDATE outbox o
SET tenant = coalesce(j.user_id, ''), high = j.priority >= 5
FROM jobs j
WHERE j.id = o.job_id AND o.published_at IS NULL;
UPDATE outbox SET tenant = '', high = false WHERE published_at IS NULL AND tenant IS NULL;

-- A tenant's pending messages in release order: high first, then oldest.
CREATE INDEX outbox_pending_tenant_idx ON outbox (tenant, high DESC, id) WHERE published_at IS NULL;
