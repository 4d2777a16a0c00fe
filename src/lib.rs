//! dbtool: reset, migrate and seed a PostgreSQL database as one unit, serialized across every
//! process and host by a session advisory lock. `run` resolves the configuration and dispatches;
//! each command's flow (cli -> config -> plan -> lock -> drop / migrate / seed -> report) is one
//! file under `commands/`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod connection;
pub mod drop;
pub mod error;
pub mod files;
pub mod infer;
pub mod load;
pub mod lock;
pub mod migrations;
pub mod plan;
pub mod progress;
pub mod record;
pub mod spec;
pub mod unit;

use cli::{Cli, Command, LockCommand};
use config::Config;
use connection::stop::Stop;
use error::Result;
use progress::Reporter;

/// Runs a parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    let (output, verbosity) = config::output_of(&cli.global);
    let reporter = Reporter::new(output, verbosity);
    let stop = Stop::default();
    match run(&cli, &stop, &reporter) {
        Ok(()) => 0,
        Err(e) => {
            if let error::Error::LockLost(why) = &e {
                reporter.lock_lost(why);
            }
            reporter.error(&e.to_string(), e.code());
            e.code()
        }
    }
}

fn run(cli: &Cli, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let config = Config::from_cli(cli)?;
    stop.install_signal_handlers(config.output == config::Output::Json)?;
    if let Some(target) = &config.target {
        reporter.debug(format!(
            "{} as {:?}: pool {} (1 lock + {} work), lock key {} ({}), schema {}",
            target,
            config.application_name(),
            config.pool_size,
            config.pool_size.saturating_sub(1),
            config.lock_key.value,
            config.lock_key.text,
            config.schema
        ));
    }
    match &cli.command {
        Command::Completions { shell } => {
            commands::completions::run(*shell);
            Ok(())
        }
        Command::Profiles(out) => commands::profiles::run(&config, out.json, reporter),
        Command::Wait => commands::wait::run(&config, reporter),
        Command::Status(out) => commands::status::run(&config, out.json, stop, reporter),
        Command::Lock(LockCommand::Status(out)) => {
            commands::lock_status::run(&config, out.json, stop, reporter)
        }
        Command::Fingerprint(out) => commands::fingerprint::run(&config, out.json, stop, reporter),
        Command::Migrate(args) => commands::migrate::run(&config, args, stop, reporter),
        Command::Reset(args) => commands::reset::run(&config, args, stop, reporter),
        Command::Seed(args) => commands::seed::run(&config, args, stop, reporter),
        Command::Init(args) => commands::init::run(&config, args, stop, reporter),
        Command::Protect => commands::protect::run(&config, true, stop, reporter),
        Command::Unprotect => commands::protect::run(&config, false, stop, reporter),
    }
}
