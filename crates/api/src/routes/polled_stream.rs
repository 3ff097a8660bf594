//! The Server-Sent Events streams of a job and of a batch: both poll their row, send an event
//! when what the client sees changes, and end after the last state. Polling the database (not
//! a notification) lets any api replica serve any stream.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;

/// How to poll one thing: what it is called, how often and how to read it, what counts as a
/// change, and when it is over.
pub struct Polled<F, K, L> {
    /// The SSE event name (`event: job`).
    pub event: &'static str,
    /// Time between two reads.
    pub every: Duration,
    /// Reads the thing again; `None` (gone, or the database is away) ends the stream and the
    /// client reconnects.
    pub fetch: F,
    /// What must differ for a read to be sent.
    pub key: K,
    /// Whether a read is the last state (the stream ends after sending it).
    pub is_last: L,
}

/// An SSE response: `first` at once, then every changed read until the last state.
pub fn polled_sse<T, Fut, F, K, Key, L>(
    first: T,
    polled: Polled<F, K, L>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    T: Serialize + Send + 'static,
    Fut: Future<Output = Option<T>> + Send,
    F: FnMut() -> Fut + Send + 'static,
    K: Fn(&T) -> Key + Send + 'static,
    Key: PartialEq + Send + 'static,
    L: Fn(&T) -> bool + Send + 'static,
{
    let stream = futures::stream::unfold(
        (polled, Some(first), None::<Key>, false),
        |(mut polled, mut next, mut last, done)| async move {
            if done {
                return None;
            }
            loop {
                let read = match next.take() {
                    Some(read) => read,
                    None => {
                        tokio::time::sleep(polled.every).await;
                        (polled.fetch)().await?
                    }
                };
                let key = (polled.key)(&read);
                if last.as_ref() == Some(&key) {
                    continue;
                }
                last = Some(key);
                let is_last = (polled.is_last)(&read);
                let event = Event::default()
                    .event(polled.event)
                    .json_data(&read)
                    .unwrap_or_default();
                return Some((Ok(event), (polled, None, last, is_last)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
