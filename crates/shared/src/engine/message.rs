//! The job message: the versioned JSON body published to RabbitMQ for every job.
//!
//! A message only *points* at a job: the job row and the uploaded file live in Postgres, so
//! messages stay small (a few hundred bytes) and file bytes never pass through the broker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::telemetry::TraceContext;
use crate::topology::DEFAULT_QUEUE;

/// The only wire version this build writes and reads. A reader rejects any other version
/// instead of guessing, so a rolling upgrade that changes the shape must bump it.
pub const MESSAGE_VERSION: u32 = 1;

/// One job delivery, as JSON: `{"v":1,"job_id":…,"kind":…,"attempt":1,"enqueued_at":…,"correlation_id":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// Wire version, always [`MESSAGE_VERSION`] when written by this build.
    pub v: u32,
    /// The job row this message runs (`jobs.id`).
    pub job_id: Uuid,
    /// Which handler runs it, e.g. `import_xlsx`.
    pub kind: String,
    /// 1 for the first publish; a re-publish for a retry carries the next number.
    pub attempt: u32,
    /// When the api published it (RFC 3339), for queue-wait measurements.
    pub enqueued_at: DateTime<Utc>,
    /// Ties the api request, this message and the worker's logs together.
    pub correlation_id: Uuid,
    /// Not before this time: a worker that receives it earlier parks it in a delay queue.
    /// (Optional and omitted when unset, so version-1 readers without it still parse.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// 0 (normal) to 9 (most urgent): 5–9 travel through the high work queue
    /// ([`crate::topology::Lane`]). Also sent as the AMQP `priority` property.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u8,
    /// The W3C trace context of the span that enqueued the job (every attempt keeps it), also
    /// sent as the AMQP `traceparent`/`tracestate` headers. Absent when tracing is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// The queue the job travels through ([`crate::topology`], "Queues per kind"); `None`:
    /// the default one. Omitted then, so a default-queue message is the same bytes as before
    /// there were queues, and readers of either build parse both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

fn is_zero(priority: &u8) -> bool {
    *priority == 0
}

/// A message body that is not a [`JobMessage`] this build can run.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of another shape.
    #[error("message body is not a job message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Well-formed, but written for another wire version.
    #[error(
        "message version {found} is not supported (this build reads version {MESSAGE_VERSION})"
    )]
    UnsupportedVersion {
        /// The `v` field the message carried.
        found: u32,
    },
}

impl JobMessage {
    /// A first-attempt message for `job_id`, stamped now.
    pub fn new(job_id: Uuid, kind: impl Into<String>, correlation_id: Uuid) -> Self {
        JobMessage {
            v: MESSAGE_VERSION,
            job_id,
            kind: kind.into(),
            attempt: 1,
            enqueued_at: Utc::now(),
            correlation_id,
            run_at: None,
            priority: 0,
            trace: None,
            queue: None,
        }
    }

    /// The same message in `queue`: [`JobMessage::queue`] is `None` for
    /// [`crate::topology::DEFAULT_QUEUE`], so the default queue's messages stay as they were.
    #[must_use]
    pub fn in_queue(self, queue: &str) -> Self {
        JobMessage {
            queue: (queue != DEFAULT_QUEUE).then(|| queue.to_owned()),
            ..self
        }
    }

    /// The name of the queue the job travels through ([`DEFAULT_QUEUE`] when unset).
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// The same job's message for attempt number `attempt`, stamped now.
    pub fn for_attempt(&self, attempt: u32) -> Self {
        JobMessage {
            attempt,
            enqueued_at: Utc::now(),
            ..self.clone()
        }
    }

    /// The JSON body to publish.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of plain fields cannot fail; keep the fallback total anyway.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a delivery body.
    ///
    /// # Errors
    /// [`DecodeError`] if the body is not JSON of this shape or carries another version. Such a
    /// message can never succeed, so the worker rejects it without requeue (to the DLQ).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let message: JobMessage = serde_json::from_slice(body)?;
        if message.v != MESSAGE_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: message.v });
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_through_json() {
        let message = JobMessage::new(Uuid::now_v7(), "import_xlsx", Uuid::new_v4());
        let decoded = JobMessage::decode(&message.encode()).expect("decodes");
        assert_eq!(decoded, message);
    }

    #[test]
    fn only_a_named_queue_travels_in_the_body() {
        let message = JobMessage::new(Uuid::now_v7(), "import_xlsx", Uuid::new_v4());
        let default = message.clone().in_queue(DEFAULT_QUEUE);
        assert_eq!(
            default.encode(),
            message.encode(),
            "same bytes as before queues"
        );
        assert_eq!(default.queue_name(), DEFAULT_QUEUE);
        let imports = message.in_queue("imports");
        let decoded = JobMessage::decode(&imports.encode()).expect("decodes");
        assert_eq!(decoded.queue_name(), "imports");
        assert_eq!(
            decoded.for_attempt(2).queue_name(),
            "imports",
            "retries keep it"
        );
    }

    #[test]
    fn garbage_and_other_versions_are_rejected() {
        assert!(matches!(
            JobMessage::decode(b"not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            JobMessage::decode(br#"{"job_id":"x"}"#),
            Err(DecodeError::Malformed(_))
        ));
        let mut message = JobMessage::new(Uuid::now_v7(), "import_xlsx", Uuid::new_v4());
        message.v = 2;
        assert!(matches!(
            JobMessage::decode(&message.encode()),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        ));
    }
}
