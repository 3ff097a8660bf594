//! The `webhook` kind's settings: which hosts it may call, the signing secret, the timeout.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `WEBHOOK_ALLOWED_HOSTS` | empty | comma-separated `host` or `host:port` entries the kind may POST to; empty: every webhook job fails |
//! | `WEBHOOK_SECRET` | unset | `whsec_<base64 of 24 to 64 bytes>` (Standard Webhooks); unset: every webhook job fails (worker only) |
//! | `WEBHOOK_TIMEOUT_SECS` | 10 | longest one request may take, connecting and reading the answer included |

use std::fmt;
use std::time::Duration;

use url::{Host, Url};

use super::signature::WebhookSecret;

/// Default of `WEBHOOK_TIMEOUT_SECS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The variable naming the allowed hosts (quoted in errors).
pub const ALLOWED_HOSTS_VAR: &str = "WEBHOOK_ALLOWED_HOSTS";
/// The variable holding the signing secret (quoted in errors).
pub const SECRET_VAR: &str = "WEBHOOK_SECRET";

/// What the `webhook` kind needs to run: [`crate::kinds::Webhook::new`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The hosts jobs may POST to; empty (the default): none.
    pub allowed_hosts: AllowedHosts,
    /// Signs each request; `None` (the default): jobs fail, nothing unsigned is sent. The api
    /// does not need it.
    pub secret: Option<WebhookSecret>,
    /// Longest one request may take (connect, send, the status and the answer's excerpt).
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allowed_hosts: AllowedHosts::default(),
            secret: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One allowed host: an exact host name or IP address, and a port if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// As the URL parser writes it: lowercase, IDNA, IPv6 in brackets.
    host: Host<String>,
    /// `None`: any port.
    port: Option<u16>,
}

/// The allow-list of `WEBHOOK_ALLOWED_HOSTS`: `host` (any port) or `host:port` (that port
/// only), compared exactly with the URL's host (no wildcards, no subdomains). An IPv6
/// address is written in brackets: `[::1]:8080`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
}

impl fmt::Debug for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, allowed) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", allowed.host)?;
            if let Some(port) = allowed.port {
                write!(f, ":{port}")?;
            }
        }
        Ok(())
    }
}

impl AllowedHosts {
    /// Parses a comma-separated list (blanks ignored; empty: no host).
    ///
    /// # Errors
    /// Names the entry that is not a `host` or `host:port`.
    pub fn parse(list: &str) -> Result<AllowedHosts, String> {
        let hosts = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                parse_entry(entry).ok_or_else(|| {
                    format!("{ALLOWED_HOSTS_VAR}: {entry:?} is not a `host` or `host:port`")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowedHosts { hosts })
    }

    /// Whether no host is allowed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether `url` may be called: its scheme is `http` or `https` and its host (and port)
    /// is on the list.
    ///
    /// # Errors
    /// Why not, for the job's message.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the webhook URL's scheme is {:?}; only http and https are allowed",
                url.scheme()
            ));
        }
        let Some(host) = url.host() else {
            return Err("the webhook URL has no host".to_owned());
        };
        if self.hosts.is_empty() {
            return Err(format!(
                "no webhook host is allowed: {ALLOWED_HOSTS_VAR} is empty (set it to the hosts webhook jobs may call)"
            ));
        }
        let host = host.to_owned();
        let port = url.port_or_known_default();
        let allowed = self
            .hosts
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| Some(p) == port));
        if allowed {
            Ok(())
        } else {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            Err(format!(
                "the webhook host {host}{port} is not in {ALLOWED_HOSTS_VAR} ({self})"
            ))
        }
    }
}

/// `host` or `host:port`, normalised as a URL's host would be.
fn parse_entry(entry: &str) -> Option<AllowedHost> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        // [v6] or [v6]:port
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (entry.to_owned(), None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    if host.contains(['/', '@', '?', '#', ' ']) {
        return None;
    }
    Some(AllowedHost {
        host: Host::parse(&host).ok()?,
        port,
    })
}

/// `WEBHOOK_*` as clap arguments, flattened into the worker's configuration.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Hosts webhook jobs may POST to: comma-separated `host` or `host:port` (exact match).
    #[arg(long, env = ALLOWED_HOSTS_VAR, default_value = "", value_parser = AllowedHosts::parse)]
    pub webhook_allowed_hosts: AllowedHosts,
    /// Signing secret of webhook requests: `whsec_<base64>` (Standard Webhooks).
    #[arg(long, env = SECRET_VAR, hide_env_values = true, value_parser = parse_secret)]
    pub webhook_secret: Option<WebhookSecret>,
    /// Longest one webhook request may take, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = DEFAULT_TIMEOUT.as_secs())]
    pub webhook_timeout_secs: u64,
}

#[cfg(feature = "cli")]
fn parse_secret(text: &str) -> Result<WebhookSecret, String> {
    WebhookSecret::parse(text).map_err(|e| e.to_string())
}

#[cfg(feature = "cli")]
impl WebhookArgs {
    /// The kind's configuration.
    pub fn config(&self) -> WebhookConfig {
        WebhookConfig {
            allowed_hosts: self.webhook_allowed_hosts.clone(),
            secret: self.webhook_secret.clone(),
            timeout: Duration::from_secs(self.webhook_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn a_host_without_port_allows_any_port_and_with_a_port_only_that_one() {
        let allowed =
            AllowedHosts::parse(" Hooks.Example.com , 127.0.0.1:8080,[::1]").expect("list");
        assert!(allowed.check(&url("https://hooks.example.com/a")).is_ok());
        assert!(allowed.check(&url("http://HOOKS.example.com:81/")).is_ok());
        assert!(allowed.check(&url("http://127.0.0.1:8080/x")).is_ok());
        assert!(allowed.check(&url("http://127.0.0.1:8081/x")).is_err());
        assert!(allowed.check(&url("http://127.0.0.1/x")).is_err());
        assert!(allowed.check(&url("http://[::1]:9/x")).is_ok());
        assert!(allowed
            .check(&url("https://evil.hooks.example.com/"))
            .is_err());
        assert!(allowed
            .check(&url("https://hooks.example.com.evil/"))
            .is_err());
    }

    #[test]
    fn a_default_port_given_explicitly_matches_the_urls_implicit_one() {
        let allowed = AllowedHosts::parse("example.com:443").expect("list");
        assert!(allowed.check(&url("https://example.com/")).is_ok());
        assert!(allowed.check(&url("http://example.com/")).is_err());
    }

    #[test]
    fn other_schemes_and_an_empty_list_are_refused_with_the_reason() {
        let allowed = AllowedHosts::parse("example.com").expect("list");
        let error = allowed
            .check(&url("ftp://example.com/"))
            .expect_err("refused");
        assert!(error.contains("only http and https"), "{error}");
        let error = AllowedHosts::default()
            .check(&url("https://example.com/"))
            .expect_err("refused");
        assert!(error.contains(ALLOWED_HOSTS_VAR), "{error}");
    }

    #[test]
    fn entries_that_are_not_hosts_are_refused() {
        for entry in ["http://x", "x:port", "a/b", "[::1", "u@x", "x:70000"] {
            assert!(AllowedHosts::parse(entry).is_err(), "{entry}");
        }
        assert!(AllowedHosts::parse(" , ").expect("blank").is_empty());
    }
}
