//! The bench's side of RabbitMQ: its queues and exchanges (listed and deleted through the
//! management api, else by name over AMQP), the work queue's purge, and the broker's version.

use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::topology::Lane;
use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

use super::Stack;

impl Stack {
    /// RabbitMQ's version, from the management api.
    pub async fn rabbitmq_version(&self) -> Option<String> {
        let overview = self.management("/api/overview").await?;
        overview["rabbitmq_version"].as_str().map(str::to_owned)
    }

    /// Deletes every queue and exchange named `{prefix}.…`: through the management api, else
    /// (plugin off) the names burrow and the raw reference use. Best effort: logs failures.
    pub(super) async fn delete_broker_objects(&self) {
        let prefix = format!("{}.", self.cfg.queue_prefix);
        let mut listed = false;
        for kind in ["queues", "exchanges"] {
            let Some(items) = self.management(&format!("/api/{kind}/%2f")).await else {
                continue;
            };
            listed = true;
            for item in items.as_array().into_iter().flatten() {
                let Some(name) = item["name"].as_str().filter(|n| n.starts_with(&prefix)) else {
                    continue;
                };
                let path = format!("/api/{kind}/%2f/{}", encode_path_segment(name));
                if let Err(e) = self.management_delete(&path).await {
                    eprintln!("  could not delete {kind} {name}: {e:#}");
                }
            }
        }
        if !listed {
            if let Err(e) = self.delete_known_queues().await {
                eprintln!("  could not delete the bench's queues: {e:#}");
            }
        }
    }

    /// The queues burrow declares under the prefix for the retry policies the benches use.
    async fn delete_known_queues(&self) -> anyhow::Result<()> {
        let topology = self.topology()?;
        let mut queues = topology.work_queues();
        queues.extend([topology.dead_letter_queue.clone(), self.raw_queue()]);
        for queue in topology.queues() {
            for ms in [500, 1000, 2000, 4000, 8000] {
                for lane in [Lane::Normal, Lane::High] {
                    queues.push(topology.delay_queue_in(queue, lane, Duration::from_millis(ms)));
                }
            }
        }
        let connection =
            Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        let _ = connection.close(200, "cleaned up".into()).await;
        Ok(())
    }

    /// The bench's names, with the shipped kinds' queues (`imports`).
    fn topology(&self) -> anyhow::Result<burrow_shared::Topology> {
        let shipped = burrow_shared::kinds::shipped(Default::default(), Default::default());
        Ok(burrow_shared::Topology::with_prefix(&self.cfg.queue_prefix)
            .with_queues(shipped.queues())?)
    }

    /// The queue of the raw lapin reference: `{prefix}.raw`.
    pub fn raw_queue(&self) -> String {
        format!("{}.raw", self.cfg.queue_prefix)
    }

    /// Removes the ready messages of every work queue (jobs no worker should run any more).
    ///
    /// # Errors
    /// If RabbitMQ cannot be asked.
    pub async fn purge_work_queue(&self) -> anyhow::Result<u32> {
        let topology = self.topology()?;
        let connection =
            Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let mut purged = 0;
        for queue in &topology.work_queues() {
            purged += channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await?;
        }
        let _ = connection.close(200, "purged".into()).await;
        Ok(purged)
    }

    pub(super) async fn management(&self, path: &str) -> Option<Value> {
        let (base, user, password) = self.management_base()?;
        let response = self
            .http
            .get(format!("{base}{path}"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn management_delete(&self, path: &str) -> anyhow::Result<()> {
        let (base, user, password) = self
            .management_base()
            .context("RABBITMQ_MANAGEMENT_URL is not a URL")?;
        let response = self
            .http
            .delete(format!("{base}{path}"))
            .basic_auth(user, Some(password))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND,
            "DELETE {path} answered {}",
            response.status()
        );
        Ok(())
    }

    /// `(scheme://host:port, user, password)` of the management api.
    fn management_base(&self) -> Option<(String, String, String)> {
        let url = reqwest::Url::parse(&self.cfg.management_url).ok()?;
        let user = match url.username() {
            "" => "guest".to_owned(),
            user => user.to_owned(),
        };
        let password = url.password().unwrap_or("guest").to_owned();
        let base = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str()?,
            url.port_or_known_default()?
        );
        Some((base, user, password))
    }
}

/// Percent-encodes a queue or exchange name for a management api path.
fn encode_path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_percent_encoded_for_the_management_api() {
        assert_eq!(
            encode_path_segment("burrow-bench.jobs.delay.1s"),
            "burrow-bench.jobs.delay.1s"
        );
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
    }
}
