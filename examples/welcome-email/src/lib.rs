//! `welcome-email`: a small app built on burrow, outside burrow's crates.
//!
//! - Its own tables (`migrations/`): `signups`, and `welcome_emails`, the job's effect.
//! - Its own job kind, [`WelcomeEmail`]: writes the e-mail it "sends" through the run's
//!   transaction, so the row and the job's success commit together.
//! - An axum route, `POST /signups`, that inserts the signup and enqueues the job in **one**
//!   Postgres transaction ([`signup`]): both exist, or neither.
//! - Its own worker binary (`src/bin/welcome-worker.rs`) registering its kind next to burrow's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use burrow_shared::handler::{JobError, JobHandler, JobOutput, RunContext};
use burrow_shared::{enqueue, NewJob};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The app's migrations; burrow's ([`burrow_shared::db::migrate`]) live in the same database.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Applies burrow's migrations, then the app's (each ignores the other's versions).
///
/// # Errors
/// If a migration fails.
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    burrow_shared::db::migrate(db).await?;
    let mut app = sqlx::migrate!("./migrations");
    app.set_ignore_missing(true);
    app.run(db).await?;
    Ok(())
}

/// `DATABASE_URL` and `AMQP_URL` (burrow's variables), with the local defaults; connects to
/// the database (creating it if missing) and migrates it. Returns the pool and the AMQP URL.
///
/// # Errors
/// If Postgres is unreachable or a migration fails.
pub async fn connect_from_env() -> anyhow::Result<(PgPool, String)> {
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/welcome".to_owned());
    let amqp_url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    burrow_shared::db::ensure_database(&database_url).await?;
    let db = burrow_shared::db::connect(&database_url, 8).await?;
    migrate(&db).await?;
    Ok((db, amqp_url))
}

/// The job kind: "send" the welcome e-mail of a signup.
#[derive(Debug, Clone, Copy, Default)]
pub struct WelcomeEmail;

/// `{"signup_id": "…"}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct WelcomePayload {
    /// The signup to welcome.
    pub signup_id: Uuid,
}

impl JobHandler for WelcomeEmail {
    const KIND: &'static str = "welcome_email";
    type Payload = WelcomePayload;

    async fn run(
        &self,
        mut ctx: RunContext<'_>,
        payload: WelcomePayload,
    ) -> Result<JobOutput, JobError> {
        let conn = ctx.tx.conn().await?;
        let email: Option<String> = sqlx::query_scalar("SELECT email FROM signups WHERE id = $1")
            .bind(payload.signup_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        let Some(email) = email else {
            return Err(JobError::Permanent(format!(
                "no signup {}",
                payload.signup_id
            )));
        };
        // A real app would call its mail provider here. Written in the run's transaction: if
        // the run fails or the worker dies, the row is rolled back with it, and a re-run
        // writes it once.
        sqlx::query("INSERT INTO welcome_emails (signup_id, body) VALUES ($1, $2)")
            .bind(payload.signup_id)
            .bind(format!("Welcome aboard, {email}!"))
            .execute(&mut *conn)
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        Ok(JobOutput {
            message: format!("Welcomed {email}"),
            ..JobOutput::default()
        })
    }
}

/// Inserts a signup and enqueues its welcome e-mail, in the caller's transaction `tx`.
/// Returns `(signup id, job id)`.
///
/// # Errors
/// The database error (e.g. the e-mail is taken); the caller rolls back, and then neither the
/// signup nor the job exists.
pub async fn signup(tx: &mut PgConnection, email: &str) -> anyhow::Result<(Uuid, Uuid)> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO signups (id, email) VALUES ($1, $2)")
        .bind(id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let job = NewJob::of::<WelcomeEmail>(&WelcomePayload { signup_id: id })?;
    let enqueued = enqueue(tx, job).await?;
    Ok((id, enqueued.job.id))
}

/// The app's routes: `POST /signups {"email": "…"}` → `201 {"signup_id", "job_id"}`, or `409`
/// when the e-mail is taken (nothing is stored then, no job either).
pub fn router(db: PgPool) -> Router {
    Router::new()
        .route("/signups", post(create_signup))
        .with_state(db)
}

/// `{"email": "…"}`.
#[derive(Debug, Deserialize)]
struct SignupRequest {
    email: String,
}

async fn create_signup(
    State(db): State<PgPool>,
    Json(request): Json<SignupRequest>,
) -> (StatusCode, Json<Value>) {
    let result = async {
        let mut tx = db.begin().await?;
        let created = signup(&mut tx, &request.email).await;
        match created {
            // One commit for the signup, the job and its message.
            Ok(ids) => tx
                .commit()
                .await
                .map(|()| Ok(ids))
                .map_err(anyhow::Error::from),
            Err(e) => {
                tx.rollback().await?;
                Ok(Err(e))
            }
        }
    }
    .await;
    match result {
        Ok(Ok((signup_id, job_id))) => (
            StatusCode::CREATED,
            Json(json!({ "signup_id": signup_id, "job_id": job_id })),
        ),
        Ok(Err(e)) if is_unique_violation(&e) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": format!("{} is signed up already", request.email) })),
        ),
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = format!("{e:#}"), "signup failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "internal error" })),
            )
        }
    }
}

fn is_unique_violation(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .is_some_and(|e| e.is_unique_violation())
}
