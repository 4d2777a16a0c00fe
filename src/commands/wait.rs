//! `dbtool wait`: until the database accepts connections (up to --wait-for-db).

use crate::config::Config;
use crate::db;
use crate::error::Result;
use crate::progress::Reporter;

pub fn run(config: &Config, reporter: &Reporter) -> Result<()> {
    let target = config.target();
    db::wait_until_ready(
        &config.connection_config(),
        target,
        config.wait_for_db,
        reporter,
    )?;
    println!("{target} accepts connections");
    Ok(())
}
