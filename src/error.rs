//! One error type for the whole program; `code()` is the only place that decides an exit code.

use std::time::Duration;

use crate::lock::holder::Holder;

/// Every way a dbtool command can end without success, each mapped to DESIGN.md §2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags, configuration, profile, seed spec or migration file name.
    #[error("{0}")]
    Usage(String),

    /// A transaction-pooling proxy (or a shared backend) makes a session lock meaningless.
    #[error(
        "{0}; a session advisory lock cannot serialize work through it. Point DATABASE_URL at the \
         PostgreSQL server itself or at a session-pooling proxy"
    )]
    SharedBackend(String),

    /// The lock is held by someone else and we were told not to wait (longer).
    #[error("{}", lock_busy_message(.holder.as_deref(), .waited))]
    LockBusy {
        holder: Option<Box<Holder>>,
        waited: Duration,
    },

    /// Protected database or no confirmation.
    #[error("{0}")]
    Refused(String),

    /// The server cannot be reached, or it refused our credentials.
    #[error("{0}")]
    Unreachable(String),

    /// The server answered that the database does not exist (`--create-database` creates it).
    #[error("{0}")]
    NoDatabase(String),

    /// A migration failed, diverged from the applied one, or is missing.
    #[error("{0}")]
    Migration(String),

    /// A migration ended the transaction it ran in by a statement no check could see before it
    /// ran: what ran before it may be committed, so nothing can claim the database is as it was.
    #[error("{0}")]
    TransactionEnded(String),

    /// The drop or the seeding failed (SQL error, DDL lock timeout).
    #[error("{0}")]
    Work(String),

    /// The lock connection died or the unlock reported that the lock was not held.
    #[error(
        "{0}; the lock was lost, so nothing done after that point can be trusted. Run the command again"
    )]
    LockLost(String),

    /// SIGINT or SIGTERM.
    #[error("interrupted by {name}: statements in flight were cancelled and the lock released")]
    Interrupted { signal: i32, name: &'static str },

    /// A bug in dbtool.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// The process exit code documented in DESIGN.md §2.
    pub fn code(&self) -> i32 {
        match self {
            Error::Internal(_) => 1,
            Error::Usage(_) | Error::SharedBackend(_) => 2,
            Error::LockBusy { .. } => 3,
            Error::Refused(_) => 4,
            Error::Unreachable(_) | Error::NoDatabase(_) => 5,
            Error::Migration(_) | Error::TransactionEnded(_) => 6,
            Error::Work(_) => 7,
            Error::LockLost(_) => 8,
            Error::Interrupted { signal, .. } => 128 + signal,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// A read that failed before anything began: nothing can have changed, and the message
    /// says so (a failure inside the transaction says it only once the rollback is verified).
    pub fn before_any_change(self) -> Self {
        match self {
            Error::Work(message) => Error::Work(format!(
                "{message}; nothing was changed: the database is as it was"
            )),
            other => other,
        }
    }

    /// The error of a step (drop, migrate, load, record...) names that step, so a server error
    /// that says only "permission denied for database x" still says where it happened.
    pub fn in_step(self, step: &str) -> Self {
        let named = |message: String| {
            if message.starts_with(step) {
                message
            } else {
                format!("{step} failed: {message}")
            }
        };
        match self {
            Error::Migration(m) => Error::Migration(named(m)),
            Error::Work(m) => Error::Work(named(m)),
            Error::Unreachable(m) => Error::Unreachable(named(m)),
            other => other,
        }
    }
}

/// A TOML file that does not parse: `file:line:column: reason` on the first line, then the
/// parser's snippet pointing at the spot, which only `-v` shows (see `Reporter::error`).
pub fn toml_error(file: &std::path::Path, text: &str, error: &toml::de::Error) -> Error {
    let reason = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return Error::usage(format!("{}: {reason}", file.display()));
    };
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let snippet = text.lines().nth(line - 1).unwrap_or("");
    let marker = " ".repeat(column - 1) + "^";
    Error::usage(format!(
        "{}:{line}:{column}: {reason}\n{line:>4} | {snippet}\n     | {marker}",
        file.display()
    ))
}

/// The first line of a message, and what follows it (shown only under `-v`).
pub fn headline(message: &str) -> (&str, Option<&str>) {
    match message.split_once('\n') {
        Some((first, rest)) if !rest.trim().is_empty() => (first, Some(rest)),
        Some((first, _)) => (first, None),
        None => (message, None),
    }
}

fn lock_busy_message(holder: Option<&Holder>, waited: &Duration) -> String {
    let who = holder.map_or_else(|| "another session".to_string(), Holder::describe);
    if waited.is_zero() {
        format!("the lock is held by {who}; retry later, or pass --lock-timeout DURATION to wait")
    } else {
        format!(
            "gave up waiting for the lock after {}; it is held by {who}",
            humantime::format_duration(Duration::from_secs(waited.as_secs()))
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_are_one_line_with_file_line_and_column() {
        let text = "seed = 1\nepoch = \"2025-01-01\"\n[counts]\nclients = = 3\n";
        let error = toml::from_str::<toml::Table>(text).unwrap_err();
        let message = toml_error(std::path::Path::new("profiles/x.toml"), text, &error).to_string();
        let (first, rest) = headline(&message);
        assert!(first.starts_with("profiles/x.toml:4:"), "{first}");
        assert!(!first.contains('\n'));
        assert!(
            rest.is_some_and(|r| r.contains("clients = = 3")),
            "{message}"
        );
    }
}
