//! `status` and `lock status`: read-only views of the database, the lock and dbtool.meta.

use postgres::Client;
use serde::Serialize;

use crate::config::Config;
use crate::lock::{Holder, holders};
use crate::migrations::{self, Applied, Comparison, Migrations};
use crate::record::meta::{self, LastReset, Protection, Unfinished};

#[derive(Debug, Serialize)]
pub struct Status {
    pub server_version: String,
    pub database: String,
    pub host: String,
    pub port: u16,
    pub schema: String,
    pub lock: LockStatus,
    pub migrations: MigrationStatus,
    pub protected: Option<Protection>,
    pub last_reset: Option<LastReset>,
    /// A reset or seed that started replacing the data and did not finish.
    pub unfinished: Option<Unfinished>,
    /// Which path the next reset takes (`warm` or `cold: why`), unless its flags say cold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_reset: Option<String>,
    /// Set while someone holds the lock: what that means for the rest of this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
}

/// What a lock holder means for what a reader sees now, or None when the lock is free.
pub fn in_progress(holders: &[Holder]) -> Option<String> {
    let holder = holders.first()?;
    Some(format!(
        "the lock is held by {}: a reset or seed may be replacing the data right now; what is read \
         now is the data from before it, and it changes when that command commits. Run this again \
         once the lock is free (`dbtool lock status`)",
        holder.describe()
    ))
}

#[derive(Debug, Serialize)]
pub struct LockStatus {
    pub key: i64,
    pub key_text: String,
    pub held: bool,
    /// The session holding the lock (an exclusive advisory lock has one), or null.
    pub holder: Option<Holder>,
    pub holders: Vec<Holder>,
}

#[derive(Debug, Serialize)]
pub struct MigrationStatus {
    pub applied: Vec<Applied>,
    /// None when the migrations directory could not be read.
    #[serde(flatten)]
    pub comparison: Option<Comparison>,
}

pub fn lock_status(client: &mut Client, config: &Config) -> Result<LockStatus, postgres::Error> {
    let holders = holders(client, config.lock_key.value)?;
    Ok(LockStatus {
        key: config.lock_key.value,
        key_text: config.lock_key.text.clone(),
        held: !holders.is_empty(),
        holder: holders.first().cloned(),
        holders,
    })
}

pub fn gather(
    client: &mut Client,
    config: &Config,
    migrations: Option<&Migrations>,
) -> Result<Status, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_catalog.current_setting('server_version'), pg_catalog.current_database()::text",
        &[],
    )?;
    let applied = migrations::applied(client, &config.schema)?;
    let mut comparison = migrations.map(|m| migrations::compare(m, &applied));
    // What the team's own tool applied is not pending either.
    if let (Some(c), Some(m)) = (comparison.as_mut(), migrations)
        && let Ok(pending) = migrations::pending(client, m, &config.schema)
    {
        c.repeatables_applied = m
            .repeatable_ids()
            .filter(|id| !pending.iter().any(|p| p == id))
            .count();
        c.pending = pending;
    }
    let next_reset = match migrations {
        None => None,
        Some(m) => Some(
            match super::warm::next(
                client,
                &config.schema,
                m.format_name(),
                &format!("{:016x}", m.files.digest()),
            )? {
                Ok(_) => "warm".to_string(),
                Err(why) => format!("cold: {why}"),
            },
        ),
    };
    let target = config.target();
    let lock = lock_status(client, config)?;
    Ok(Status {
        in_progress: in_progress(&lock.holders),
        server_version: row.get(0),
        database: row.get(1),
        host: target.host(),
        port: target.port(),
        schema: config.schema.clone(),
        lock,
        migrations: MigrationStatus {
            applied,
            comparison,
        },
        protected: meta::protection(client)?,
        last_reset: meta::last_reset(client, &config.schema)?,
        unfinished: meta::unfinished(client, &config.schema)?,
        next_reset,
    })
}

impl LockStatus {
    pub fn render(&self) -> String {
        if self.holders.is_empty() {
            return format!("lock {} ({}): free\n", self.key, self.key_text);
        }
        let mut out = format!("lock {} ({}): held\n", self.key, self.key_text);
        for h in &self.holders {
            out.push_str(&format!(
                "  pid {}\n  application_name {}\n  client address {}\n  since {}\n  state {}\n  query {}\n",
                h.pid,
                h.application_name,
                h.client_addr.as_deref().unwrap_or("local socket"),
                h.since.as_deref().unwrap_or("-"),
                h.state.as_deref().unwrap_or("-"),
                h.query.as_deref().unwrap_or("-").trim(),
            ));
        }
        out
    }
}

impl Status {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
        line(
            "server",
            format!(
                "PostgreSQL {} at {}:{}",
                self.server_version, self.host, self.port
            ),
        );
        line(
            "database",
            format!("{} (schema {})", self.database, self.schema),
        );
        line(
            "lock",
            match self.lock.holders.first() {
                None => format!("free (key {})", self.lock.key),
                Some(h) => format!("held by {} (key {})", h.describe(), self.lock.key),
            },
        );
        let applied = self.migrations.applied.len()
            + self
                .migrations
                .comparison
                .as_ref()
                .map_or(0, |c| c.repeatables_applied);
        line(
            "migrations",
            match &self.migrations.comparison {
                None => format!("{applied} applied (migrations directory not readable)"),
                Some(c) => {
                    let mut text = format!(
                        "{applied} applied, {} pending ({} migrations)",
                        c.pending.len(),
                        c.format
                    );
                    if !c.pending.is_empty() {
                        text.push_str(&format!(": {}", c.pending.join(", ")));
                    }
                    if !c.divergent.is_empty() {
                        text.push_str(&format!(
                            ", changed since applied: {}",
                            c.divergent.join(", ")
                        ));
                    }
                    if !c.missing.is_empty() {
                        text.push_str(&format!(", missing files: {}", c.missing.join(", ")));
                    }
                    text
                }
            },
        );
        line(
            "protection",
            match &self.protected {
                None => "off".to_string(),
                Some(p) => format!("on since {} by {}", p.since, p.by),
            },
        );
        line(
            "last reset",
            match &self.last_reset {
                None => "none recorded".to_string(),
                Some(r) => format!(
                    "{}{}profile {}, seed {}, fingerprint {}, dbtool {} on {}, {} -> {} ({:.2}s)",
                    if r.command == "reset" { "" } else { &r.command },
                    if r.command == "reset" { "" } else { " of " },
                    r.profile,
                    r.seed,
                    r.fingerprint,
                    r.dbtool_version,
                    r.host,
                    r.started_at,
                    r.finished_at,
                    r.duration_ms as f64 / 1000.0
                ),
            },
        );
        if let Some(next) = &self.next_reset {
            line(
                "next reset",
                match next.as_str() {
                    "warm" => "warm path (migration files and catalog unchanged since the last \
                               cold reset; --cold, --parallel, a seed command or an inferred \
                               spec make it cold)"
                        .to_string(),
                    cold => format!("cold path ({})", cold.trim_start_matches("cold: ")),
                },
            );
        }
        if let Some(note) = &self.in_progress {
            out.push_str(&format!("{:<12} {note}\n", "in progress"));
        }
        if let Some(u) = self
            .unfinished
            .as_ref()
            .filter(|_| self.in_progress.is_none())
        {
            out.push_str(&format!(
                "{:<12} a {} started at {} by {} did not finish: the data may be partial; run reset again\n",
                "unfinished", u.command, u.started_at, u.by
            ));
        }
        out
    }
}
