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

