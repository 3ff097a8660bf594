-- API keys: who may call /api, as which owner tag, and whether as an admin.

CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY,
    -- Shown in listings so people can tell keys apart; never the key itself.
    name       text        NOT NULL,
    -- The owner tag of everything this key creates and the only jobs it can see.
    user_id    text        NOT NULL,
    -- Admin keys see and control every job, and reach the admin endpoints.
    is_admin   boolean     NOT NULL DEFAULT false,
    -- SHA-256 of the key. Keys are 244 random bits, so a fast hash is enough (no brute force is
    -- possible); the key itself is shown once, at creation, and stored nowhere.
    key_hash   bytea       NOT NULL UNIQUE,
    -- The key's first characters, to recognise and revoke it.
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
