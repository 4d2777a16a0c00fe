//! `dbtool fingerprint`: per-table row counts and digests, computed by the server.

use serde_json::json;

use super::{print_result, read_error, workers};
use crate::config::Config;
use crate::connection::Database;
use crate::connection::stop::Stop;
use crate::error::Result;
use crate::lock;
use crate::progress::Reporter;
use crate::record::{fingerprint, status};

/// A digest taken while a reset holds the lock says so: it may be the old data, not the new.
pub fn run(config: &Config, json: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    lock::refuse_if_citus_worker(&mut *db.work()?)?;
    let lock_key = config.lock_key.value;
    let held_before = lock::holders(&mut *db.work()?, lock_key).map_err(read_error)?;
    let mut fp = fingerprint::compute(&db, &config.schema, workers(config))?;
    let held_after = lock::holders(&mut *db.work()?, lock_key).map_err(read_error)?;
    fp.in_progress = status::in_progress(&held_after).or(status::in_progress(&held_before));
    if let Some(note) = &fp.in_progress {
        reporter.warn("lock-held", note.clone(), json!({}));
    }
    print_result(json, &fp, || fp.render());
    Ok(())
}
