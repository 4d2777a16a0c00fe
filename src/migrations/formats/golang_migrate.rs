//! golang-migrate: `{version}_{title}.up.sql` with `.down.sql` beside it (never run), in version
//! order. History as its postgres driver keeps it: `schema_migrations (version bigint, dirty
//! boolean)` holding one row, the latest version applied, not dirty.

use std::time::Duration;

use postgres::Client;

use super::{
    Format, Listing, Source, Tool, Versioned, history_rows, ids_where, misnamed, numbered,
    qualified,
};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct GolangMigrate;

const TABLE: &str = "schema_migrations";

/// `{version}_{title}.up.sql` or `.down.sql`: version, title, whether up.
pub(crate) fn up_or_down(file: &str) -> Option<(&str, &str, bool)> {
    let (stem, up) = match file.strip_suffix(".up.sql") {
        Some(stem) => (stem, true),
        None => (file.strip_suffix(".down.sql")?, false),
    };
    let (version, title) = numbered(stem)?;
    Some((version, title, up))
}

impl Tool for GolangMigrate {
    fn format(&self) -> Format {
        Format::GolangMigrate
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        listing
            .sql
            .iter()
            .filter(|f| up_or_down(f).is_some())
            .cloned()
            .collect()
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let mut sources = Versioned::<u64>::new(listing);
        for file in &listing.sql {
            let path = listing.path(file);
            let Some((version, title, up)) = up_or_down(file) else {
                return Err(misnamed(
                    &path,
                    "golang-migrate",
                    "{version}_{title}.up.sql and .down.sql",
                ));
            };
            if !up {
                continue;
            }
            let number = Versioned::<u64>::number(&path, version)?;
            sources.check_free(number, file)?;
            let text = listing.read_file(files, &path)?;
            sources.push(
                number,
                Source::whole(
                    file.trim_end_matches(".up.sql").to_string(),
                    Some(number.to_string()),
                    title.to_string(),
                    path,
                    text,
                )
                .outside_when_concurrent(),
            );
        }
        Ok(sources.in_order())
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    /// golang-migrate's rule: every version up to the one recorded; a dirty one stops it.
    fn tool_applied(
        &self,
        client: &mut Client,
        schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        let row = history_rows(
            client,
            &table,
            &format!("SELECT version, dirty FROM {table} LIMIT 1"),
        )?;
        let Some((latest, dirty)) = row
            .first()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(1)))
        else {
            return Ok(Vec::new());
        };
        if dirty {
            return Err(Error::Migration(format!(
                "{table} says version {latest} is dirty (a golang-migrate run failed in it); fix \
                 the database and `migrate force`, or reset it"
            )));
        }
        Ok(ids_where(sources, |s| version_of(s) <= latest))
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, dirty boolean not null)",
            qualified(schema, TABLE)
        ))
    }

    fn record(
        &self,
        client: &mut Client,
        schema: &str,
        source: &Source,
        _rank: usize,
        _took: Duration,
    ) -> Result<(), postgres::Error> {
        let table = qualified(schema, TABLE);
        client.batch_execute(&format!("DELETE FROM {table}"))?;
        client.execute(
            &format!("INSERT INTO {table} (version, dirty) VALUES ($1, false)"),
            &[&version_of(source)],
        )?;
        Ok(())
    }
}

fn version_of(source: &Source) -> i64 {
    source.version_number().unwrap_or(i64::MAX)
}
