//! A process's name in what it writes to the database (a worker's id on the jobs it runs,
//! `updated_by` of the settings it declares): `{hostname}:{pid}`, unique on a cluster while
//! the process lives and telling an operator where to look.

/// `{hostname}:{pid}`, with `fallback_host` when the host name cannot be read (outside
/// Linux, say).
///
/// # Example
/// ```
/// let id = burrow_shared::process_id::process_id("worker");
/// assert!(id.ends_with(&format!(":{}", std::process::id())));
/// ```
pub fn process_id(fallback_host: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| fallback_host.to_owned());
    format!("{host}:{}", std::process::id())
}
