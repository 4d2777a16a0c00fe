//! The one transaction a reset, seed or migrate runs in (DESIGN.md §3 invariant 10): one work
//! connection, one `BEGIN` ... `COMMIT`. Whatever ends the command before `commit` (an error, a
//! signal, a lost lock, a kill) rolls all of it back: an explicit `ROLLBACK` when the process is
//! still alive, the server's own when the connection closes.

use std::time::Duration;

use postgres::Client;

use crate::connection::{Database, WorkClient, describe_sql_error};
use crate::error::{Error, Result};

pub struct Unit {
    client: WorkClient,
    lock_timeout: Duration,
    open: bool,
}

impl Unit {
    /// Opens the transaction. Every lock it waits for (the drop's, a truncate's) waits at most
    /// `lock_timeout` (`--ddl-lock-timeout`).
    pub fn begin(db: &Database, lock_timeout: Duration) -> Result<Self> {
        let mut unit = Unit {
            client: db.work()?,
            lock_timeout,
            open: false,
        };
        unit.open_transaction()?;
        Ok(unit)
    }

    fn open_transaction(&mut self) -> Result<()> {
        self.try_open()
            .map_err(|e| transaction_error("starting the transaction", &e))
    }

    fn try_open(&mut self) -> Result<(), postgres::Error> {
        self.client.batch_execute("BEGIN")?;
        self.client.batch_execute(&format!(
            "SET LOCAL lock_timeout TO {}",
            self.lock_timeout.as_millis().clamp(1, i32::MAX as u128)
        ))?;
        self.open = true;
        Ok(())
    }

    /// The transaction's connection. Never call `transaction()` on it: the postgres crate's
    /// `COMMIT` would end this unit.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Commits what was done so far and opens a new transaction: only where the user gave up
    /// atomicity explicitly (a `-- no-transaction` migration, `--parallel`).
    pub fn checkpoint(&mut self) -> Result<()> {
        self.commit_open()?;
        self.open_transaction()
    }

    /// Commits, then runs each statement on its own outside any transaction block: a
    /// `-- no-transaction` migration. The connection stays outside a transaction (so that the
    /// migration's history row commits with it) until `reopen`.
    pub fn outside(&mut self, statements: &[String]) -> Result<(), postgres::Error> {
        if self.open {
            self.open = false;
            self.client.batch_execute("COMMIT")?;
        }
        statements
            .iter()
            .try_for_each(|s| self.client.batch_execute(s))
    }

    /// Opens the next transaction after `outside`.
    pub fn reopen(&mut self) -> Result<(), postgres::Error> {
        self.try_open()
    }

    /// Whether a transaction of this unit is open (not between `outside` and `reopen`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn commit(mut self) -> Result<()> {
        self.commit_open()
    }

    fn commit_open(&mut self) -> Result<()> {
        self.open = false;
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| transaction_error("committing", &e))
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if self.open {
            // Best effort: if the connection is gone, the server has rolled back already.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

fn transaction_error(what: &str, e: &postgres::Error) -> Error {
    Error::Work(format!("{what} failed: {}", describe_sql_error(e, None)))
}
