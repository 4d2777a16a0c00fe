//! A session holding the advisory lock, as pg_stat_activity shows it: plain data, so that errors
//! and progress can describe a holder without depending on the lock itself.

use serde::Serialize;

/// A session holding the lock, as pg_stat_activity shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: Option<String>,
    /// When the holder's session started (PostgreSQL does not record when a lock was granted).
    pub since: Option<String>,
    pub state: Option<String>,
    pub query: Option<String>,
}

impl Holder {
    pub fn describe(&self) -> String {
        let name = if self.application_name.is_empty() {
            "no application_name".to_string()
        } else {
            self.application_name.clone()
        };
        let from = self
            .client_addr
            .as_deref()
            .map_or("local socket".to_string(), |a| a.to_string());
        let since = self.since.as_deref().unwrap_or("unknown");
        format!(
            "pid {} ({name}) from {from}, connected since {since}",
            self.pid
        )
    }
}
