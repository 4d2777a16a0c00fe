fn main() {
    // A .env file fills in what the environment does not already say.
    let _ = dotenvy::dotenv();
    let cli = dbtool::cli::parse();
    std::process::exit(dbtool::execute(cli));
}
