//! `dbtool protect` / `unprotect`: the mark in dbtool.meta that makes reset and seed refuse.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{locked, meta_error, rfc3339};
use crate::config::Config;
use crate::connection::Database;
use crate::connection::stop::Stop;
use crate::error::Result;
use crate::progress::Reporter;
use crate::record::meta;

pub fn run(config: &Config, on: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    let done = locked(config, &db, reporter, || {
        let protection = on.then(|| meta::Protection {
            since: rfc3339(SystemTime::now()),
            by: config.application_name(),
        });
        meta::set_protection(&mut *db.work()?, protection.as_ref()).map_err(meta_error)
    })?;
    if done.is_some() {
        let state = if on { "protected" } else { "unprotected" };
        reporter.done(
            &format!("{} {state}", config.target()),
            Duration::ZERO,
            json!({ "protected": on }),
        );
    }
    Ok(())
}
