//! The one transaction a reset, seed or migrate runs in (DESIGN.md §3 invariant 10): one work
//! connection, one `BEGIN` ... `COMMIT`. Whatever ends the command before `commit` (an error, a
//! signal, a lost lock, a kill) rolls all of it back: an explicit `ROLLBACK` when the process is
//! still alive, the server's own when the connection closes.

use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, SimpleQueryMessage};

use crate::connection::{Database, Ledger, WorkClient, describe_sql_error};
use crate::error::{Error, Result};

pub struct Unit {
    client: WorkClient,
    lock_timeout: Duration,
    open: bool,
    /// `now()` of the open transaction: the time of its BEGIN, which no later transaction of
    /// this connection shares, so the rollback can check that it ends this one.
    began_at: Option<String>,
    ledger: Arc<Ledger>,
}

impl Unit {
    /// Opens the transaction. Every lock it waits for (the drop's, a truncate's) waits at most
    /// `lock_timeout` (`--ddl-lock-timeout`).
    pub fn begin(db: &Database, lock_timeout: Duration) -> Result<Self> {
        let mut unit = Unit {
            client: db.work()?,
            lock_timeout,
            open: false,
            began_at: None,
            ledger: db.ledger.clone(),
        };
        unit.ledger.began();
        unit.open_transaction()?;
        Ok(unit)
    }

    fn open_transaction(&mut self) -> Result<()> {
        self.try_open()
            .map_err(|e| transaction_error("starting the transaction", &e))
    }

    fn try_open(&mut self) -> Result<(), postgres::Error> {
        self.client.batch_execute("BEGIN")?;
        // One statement per query (a Citus coordinator hands a query's whole text on):
        // set_config(..., true) is SET LOCAL.
        let answer = self.client.simple_query(&format!(
            "SELECT pg_catalog.now()::text, pg_catalog.set_config('lock_timeout', '{}', true)",
            self.lock_timeout.as_millis().clamp(1, i32::MAX as u128)
        ))?;
        self.began_at = first_value(&answer);
        self.open = true;
        Ok(())
    }

    /// Rolls the open transaction back, checking first that it is still the one `try_open`
    /// began (a statement may have ended it, and what ran after it then committed on its own);
    /// the ledger hears when that cannot be shown.
    fn roll_back(&mut self) {
        self.open = false;
        let same = match self.client.simple_query("SELECT pg_catalog.now()::text") {
            Ok(answer) => self.began_at.is_some() && first_value(&answer) == self.began_at,
            // Failed, the transaction refuses every query until the rollback: still open.
            Err(e) => e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        };
        // Best effort: if the connection is gone, the server has rolled back already.
        let rolled_back = self.client.batch_execute("ROLLBACK").is_ok();
        if !(same && rolled_back) {
            self.ledger.unverified();
        }
    }

    /// The transaction's connection. Never call `transaction()` on it: the postgres crate's
    /// `COMMIT` would end this unit.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Commits, then runs each statement on its own outside any transaction block: a
    /// `-- no-transaction` migration. The connection stays outside a transaction (so that the
    /// migration's history row commits with it) until `reopen`.
    /// A failing statement's error comes with its index: the ones before it are committed.
    pub fn outside(
        &mut self,
        statements: &[String],
    ) -> Result<(), (Option<usize>, postgres::Error)> {
        // What runs outside commits as it runs.
        self.ledger.committed();
        if self.open {
            self.open = false;
            self.client.batch_execute("COMMIT").map_err(|e| (None, e))?;
        }
        statements
            .iter()
            .enumerate()
            .try_for_each(|(i, s)| self.client.batch_execute(s).map_err(|e| (Some(i), e)))
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
        match self.client.batch_execute("COMMIT") {
            Ok(()) => {
                self.ledger.committed();
                Ok(())
            }
            Err(e) => {
                // The server answered: it rolled the transaction back. No answer: the COMMIT
                // may or may not have happened.
                if e.as_db_error().is_none() {
                    self.ledger.unverified();
                }
                Err(transaction_error("committing", &e))
            }
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if self.open {
            self.roll_back();
        }
    }
}

/// The first column of the first row of a simple query's answer.
fn first_value(answer: &[SimpleQueryMessage]) -> Option<String> {
    answer.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

fn transaction_error(what: &str, e: &postgres::Error) -> Error {
    Error::Work(format!("{what} failed: {}", describe_sql_error(e, None)))
}
