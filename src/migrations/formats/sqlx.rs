//! sqlx: `{version}_{description}.sql` files (or `.up.sql` with `.down.sql`, never run), in
//! version order; `-- no-transaction` is sqlx's own marker. History as sqlx-cli keeps it:
//! `_sqlx_migrations`, one row per migration with the description (underscores as spaces),
//! `success` true, the SHA-384 `checksum` of the file and the `execution_time` in nanoseconds.

use std::time::Duration;

use postgres::Client;
use sha2::{Digest, Sha384};

use super::golang_migrate::up_or_down;
use super::{
    Format, Listing, Source, Tool, Versioned, history_rows, ids_where, misnamed, numbered,
    qualified,
};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Sqlx;

const TABLE: &str = "_sqlx_migrations";

impl Tool for Sqlx {
    fn format(&self) -> Format {
        Format::Sqlx
    }

    /// Timestamped `.sql` files that no other tool annotates or lists.
    fn evidence(&self, listing: &Listing) -> Vec<String> {
        let drizzle = super::drizzle::journal_tags(listing);
        if drizzle.is_empty() && super::drizzle::Drizzle.evidence(listing).len() == 1 {
            // drizzle's folder with a journal it cannot read: drizzle's reader says why.
            return Vec::new();
        }
        listing
            .sql
            .iter()
            .filter(|f| up_or_down(f).is_none())
            .filter(|f| numbered(f.trim_end_matches(".sql")).is_some())
            .filter(|f| !drizzle.iter().any(|t| f.trim_end_matches(".sql") == t))
            .filter(|f| {
                let text = listing.peek(f);
                !super::goose::is_goose(&text) && !super::dbmate::is_dbmate(&text)
            })
            .cloned()
            .collect()
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let mut sources = Versioned::<i64>::new(listing);
        for file in &listing.sql {
            let path = listing.path(file);
            let stem = match up_or_down(file) {
                Some((_, _, false)) => continue,
                Some(_) => file.trim_end_matches(".up.sql"),
                None => file.trim_end_matches(".sql"),
            };
            let parsed = numbered(stem).and_then(|(v, d)| Some((v.parse::<i64>().ok()?, d)));
            let Some((version, description)) = parsed else {
                return Err(misnamed(&path, "sqlx", "{version}_{description}.sql"));
            };
            sources.check_free(version, file)?;
            let text = listing.read_file(files, &path)?;
            sources.push(
                version,
                Source::whole(
                    stem.to_string(),
                    Some(version.to_string()),
                    description.replace('_', " "),
                    path,
                    text,
                ),
            );
        }
        Ok(sources.in_order())
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    /// sqlx's rule: the versions recorded; a row that did not succeed stops it (dirty).
    fn tool_applied(
        &self,
        client: &mut Client,
        schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        let applied: Vec<(i64, bool)> = history_rows(
            client,
            &table,
            &format!("SELECT version, success FROM {table}"),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        if let Some((dirty, _)) = applied.iter().find(|(_, success)| !success) {
            return Err(Error::Migration(format!(
                "{table} records migration {dirty} as partially applied (dirty); fix the database \
                 and that row, or reset it"
            )));
        }
        Ok(ids_where(sources, |s| {
            s.version_number()
                .is_some_and(|v| applied.iter().any(|(a, _)| *a == v))
        }))
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                success BOOLEAN NOT NULL,
                checksum BYTEA NOT NULL,
                execution_time BIGINT NOT NULL
             )",
            qualified(schema, TABLE)
        ))
    }

    fn record(
        &self,
        client: &mut Client,
        schema: &str,
        source: &Source,
        _rank: usize,
        took: Duration,
    ) -> Result<(), postgres::Error> {
        let version = source.version_number().unwrap_or_default();
        let checksum = Sha384::digest(source.text.as_bytes()).to_vec();
        let nanos = i64::try_from(took.as_nanos()).unwrap_or(i64::MAX);
        client.execute(
            &format!(
                "INSERT INTO {} (version, description, success, checksum, execution_time)
                 VALUES ($1, $2, TRUE, $3, $4)",
                qualified(schema, TABLE)
            ),
            &[&version, &source.description, &checksum, &nanos],
        )?;
        Ok(())
    }
}
