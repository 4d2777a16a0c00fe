//! `dbtool fingerprint`: per-table row counts and digests, computed by the server.

use super::{print_result, workers};
use crate::config::Config;
use crate::db::Database;
use crate::error::Result;
use crate::fingerprint;
use crate::progress::Reporter;
use crate::stop::Stop;

pub fn run(config: &Config, json: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    let fp = fingerprint::compute(&db, &config.schema, workers(config))?;
    print_result(json, &fp, || fp.render());
    Ok(())
}
