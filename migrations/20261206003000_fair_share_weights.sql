-- Weights per tenant for fair sharing (issue 14): a tenant of weight 3 is served three releases
-- for each one of a tenant of weight 1 while both have a backlog. The relays' turn order divides
-- a pending message's turn (its tenant's decayed usage plus its place in the tenant's line) by
-- the tenant's weight. The Rust side is crates/shared/src/engine/fair_share_weights.rs (this
-- table, FAIR_SHARE_WEIGHTS) and crates/shared/src/engine/fair_share.rs (the turn order).

-- One row per tenant (jobs.user_id; '' for jobs without an owner tag) whose weight is not 1,
-- written by api and worker replicas at start-up from FAIR_SHARE_WEIGHTS (the last replica to
-- start wins) and read by every ranking of the backlog. Tenants without a row weigh 1. A weight
-- is from a millionth to a million (which also refuses 0, NaN and infinities): a turn divided by
-- a weight near 0 could overflow, and an error there would stop every ranking.
CREATE TABLE fair_share_weights (
    tenant     text             PRIMARY KEY,
    weight     double precision NOT NULL CHECK (weight >= 1e-6 AND weight <= 1e6),
    updated_at timestamptz      NOT NULL DEFAULT now(),
    updated_by text
);
