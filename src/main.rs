fn main() {
    // A .env file fills in what the environment does not already say.
    let env_file = dbtool::config::load_env_file();
    let cli = dbtool::cli::parse();
    if let Err(e) = env_file {
        let (output, verbosity) = dbtool::config::output_of(&cli.global);
        dbtool::progress::Reporter::new(output, verbosity).error(&e.to_string(), e.code());
        std::process::exit(e.code());
    }
    std::process::exit(dbtool::execute(cli));
}
