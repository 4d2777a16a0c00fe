//! `dbtool status`: server, database, lock holder, migrations, protection and the last reset.

use super::{print_result, read_error};
use crate::config::Config;
use crate::connection::Database;
use crate::connection::stop::Stop;
use crate::error::Result;
use crate::migrations::Migrations;
use crate::progress::Reporter;
use crate::record::status;

pub fn run(config: &Config, json: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    crate::lock::refuse_if_citus_worker(&mut *db.work()?)?;
    let migrations =
        Migrations::load(&config.paths.migrations, config.paths.migrations_format).ok();
    let status =
        status::gather(&mut *db.work()?, config, migrations.as_ref()).map_err(read_error)?;
    print_result(json, &status, || status.render());
    Ok(())
}
