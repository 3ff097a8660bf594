-- The app's own tables, beside burrow's in the same database (see src/lib.rs, `migrate`).
CREATE TABLE signups (
    id         uuid PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per welcome e-mail "sent": the job's effect, written in the job run's transaction.
CREATE TABLE welcome_emails (
    signup_id uuid PRIMARY KEY REFERENCES signups (id),
    body      text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now()
);
