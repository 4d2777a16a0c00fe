//! `dbtool wait`: until the database accepts connections (up to --wait-for-db).

use crate::config::Config;
use crate::connection;
use crate::error::Result;
use crate::progress::Reporter;

pub fn run(config: &Config, reporter: &Reporter) -> Result<()> {
    let connected = connection::wait_until_ready(config, reporter)?;
    println!("{} accepts connections", connected.target);
    Ok(())
}
