//! `dbtool lock status`: who holds the lock now.

use super::{print_result, read_error};
use crate::config::Config;
use crate::connection::Database;
use crate::connection::stop::Stop;
use crate::error::Result;
use crate::progress::Reporter;
use crate::record::status;

pub fn run(config: &Config, json: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    crate::lock::refuse_if_citus_worker(&mut *db.work()?)?;
    let status = status::lock_status(&mut *db.work()?, config).map_err(read_error)?;
    print_result(json, &status, || status.render());
    Ok(())
}
