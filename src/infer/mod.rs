//! A seed spec from the schema: the catalog (`catalog`) -> a model of what each table and
//! column gets (`model`, with `checks` and `values`) -> the text of seeds/seed.toml and the
//! profiles (`write`). Data flows one way; nothing here changes the database.

mod catalog;
mod checks;
mod data;
mod model;
mod values;
mod write;

use postgres::Client;

/// The version of the inference: what `dbtool init` writes, and what a reset without a spec
/// seeds, for a given schema. A change to either is a new version (recorded in dbtool.meta).
pub const INFERENCE_VERSION: u32 = 2;

/// The files `dbtool init` writes.
#[derive(Debug, Clone)]
pub struct Written {
    pub seed: String,
    pub dev: String,
    pub ci: String,
    /// Tables the spec does not seed, and why.
    pub skipped: Vec<(String, String)>,
}

/// Why a schema could not be read, or could not be inferred.
#[derive(Debug)]
pub enum Failure {
    Read(postgres::Error),
    /// The table and column to edit, and why.
    Cannot(String),
}

/// Reads `schema` through `client` and writes the spec and profiles for it. `origin` says
/// where the schema came from, for the spec's first line. `migrated`: the schema was just built
/// by the migrations, so the rows it holds are theirs (reference data the spec leaves alone);
/// otherwise rows are not read.
pub fn infer(
    client: &mut Client,
    schema: &str,
    origin: &str,
    migrated: bool,
) -> Result<Written, Failure> {
    let tables = catalog::read(client, schema, migrated).map_err(Failure::Read)?;
    let model = model::build(&tables, schema).map_err(Failure::Cannot)?;
    Ok(Written {
        seed: write::seed_toml(&model, origin),
        dev: write::dev_toml(&model),
        ci: write::ci_toml(&model),
        skipped: model.skipped,
    })
}
