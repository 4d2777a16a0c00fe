//! dbmate: `{version}_{name}.sql` files with `-- migrate:up` and `-- migrate:down` sections, in
//! file-name order. The down section never runs; `transaction:false` on the up line maps onto
//! `-- no-transaction`. History as dbmate keeps it: `schema_migrations (version varchar(128)
//! primary key)`, one row per migration.

use std::time::Duration;

use postgres::Client;

use super::{
    Format, Listing, Source, Tool, history_rows, ids_where, misnamed, numbered, qualified,
    up_section,
};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Dbmate;

const TABLE: &str = "schema_migrations";

fn directive(line: &str) -> Option<&str> {
    line.strip_prefix("-- migrate:")
}

pub(crate) fn is_dbmate(text: &str) -> bool {
    text.lines()
        .any(|l| directive(l.trim()).is_some_and(|d| d.starts_with("up")))
}

impl Tool for Dbmate {
    fn format(&self) -> Format {
        Format::Dbmate
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        listing.sql_marked(is_dbmate)
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let mut sources = Vec::new();
        for file in &listing.sql {
            let path = listing.path(file);
            let stem = file.trim_end_matches(".sql");
            let Some((version, name)) = numbered(stem) else {
                return Err(misnamed(&path, "dbmate", "{version}_{name}.sql"));
            };
            if let Some(twin) = sources
                .iter()
                .find(|s: &&Source| s.version.as_deref() == Some(version))
            {
                return Err(Error::usage(format!(
                    "{}: version {version} is used twice ({} and {file})",
                    listing.dir.display(),
                    twin.id
                )));
            }
            let text = listing.read_file(files, &path)?;
            let Some(up_line) = text
                .lines()
                .map(str::trim)
                .find(|l| directive(l).is_some_and(|d| d.starts_with("up")))
            else {
                return Err(Error::usage(format!(
                    "{}: no `-- migrate:up` line (dbmate refuses such a file too)",
                    path.display()
                )));
            };
            let outside = up_line.contains("transaction:false");
            let up = up_section(
                &text,
                |l| directive(l).is_some_and(|d| d.starts_with("up")),
                |l| directive(l).is_some_and(|d| d.starts_with("down")),
                outside,
            );
            sources.push(Source {
                id: stem.to_string(),
                version: Some(version.to_string()),
                description: name.to_string(),
                path,
                up,
                text,
                created: None,
            });
        }
        Ok(sources)
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    fn tool_applied(
        &self,
        client: &mut Client,
        schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        let applied: Vec<String> = history_rows(
            client,
            &table,
            &format!("SELECT version::text FROM {table}"),
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        Ok(ids_where(sources, |s| {
            s.version.as_ref().is_some_and(|v| applied.contains(v))
        }))
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version varchar(128) primary key)",
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
        client.execute(
            &format!(
                "INSERT INTO {} (version) VALUES ($1)",
                qualified(schema, TABLE)
            ),
            &[&source.version],
        )?;
        Ok(())
    }
}
