//! goose: `{version}_{name}.sql` files with `-- +goose Up` and `-- +goose Down` sections, in
//! version order. The Down section never runs; `-- +goose NO TRANSACTION` maps onto
//! `-- no-transaction`; `StatementBegin` / `StatementEnd` blocks are statements PostgreSQL's own
//! parser finds in the batch. History as goose keeps it: `goose_db_version`, created with its
//! version-0 row, then one `(version_id, is_applied = true)` row per migration.

use std::time::Duration;

use postgres::Client;

use super::{
    Format, Listing, Source, Tool, Versioned, exists, history_rows, ids_where, misnamed, numbered,
    qualified, up_section,
};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Goose;

const TABLE: &str = "goose_db_version";

fn annotation(line: &str) -> Option<String> {
    line.strip_prefix("-- +goose")
        .map(|rest| rest.trim().to_ascii_lowercase())
}

pub(crate) fn is_goose(text: &str) -> bool {
    text.lines()
        .any(|l| annotation(l.trim()).is_some_and(|a| a == "up"))
}

impl Tool for Goose {
    fn format(&self) -> Format {
        Format::Goose
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        listing.sql_marked(is_goose)
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        if let Some(go) = listing
            .others
            .iter()
            .find(|f| f.ends_with(".go") && numbered(f).is_some())
        {
            return Err(Error::usage(format!(
                "{}: a goose migration written in Go; dbtool runs SQL migrations only, so it \
                 cannot apply this folder as goose would. Write it as SQL, or keep migrating with \
                 goose",
                listing.path(go).display()
            )));
        }
        let mut sources = Versioned::<i64>::new(listing);
        for file in &listing.sql {
            let path = listing.path(file);
            let stem = file.trim_end_matches(".sql");
            let Some((version, name)) = numbered(stem) else {
                return Err(misnamed(&path, "goose", "{version}_{name}.sql"));
            };
            let number = Versioned::<i64>::number(&path, version)?;
            sources.check_free(number, file)?;
            let text = listing.read_file(files, &path)?;
            if !is_goose(&text) {
                return Err(Error::usage(format!(
                    "{}: no `-- +goose Up` annotation (goose refuses such a file too)",
                    path.display()
                )));
            }
            if text
                .lines()
                .any(|l| annotation(l.trim()).is_some_and(|a| a.starts_with("envsub")))
            {
                return Err(Error::usage(format!(
                    "{}: `-- +goose ENVSUB` substitutes environment variables, which dbtool does \
                     not do; write the values into the file",
                    path.display()
                )));
            }
            let outside = text
                .lines()
                .any(|l| annotation(l.trim()).is_some_and(|a| a == "no transaction"));
            let up = up_section(
                &text,
                |l| annotation(l).is_some_and(|a| a == "up"),
                |l| annotation(l).is_some_and(|a| a == "down"),
                outside,
            );
            sources.push(
                number,
                Source {
                    id: stem.to_string(),
                    version: Some(number.to_string()),
                    description: name.to_string(),
                    path,
                    up,
                    text,
                    created: None,
                },
            );
        }
        Ok(sources.in_order())
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    /// goose's rule: a version whose latest row says applied.
    fn tool_applied(
        &self,
        client: &mut Client,
        schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        let applied: Vec<i64> = history_rows(
            client,
            &table,
            &format!(
                "SELECT version_id FROM (
                    SELECT DISTINCT ON (version_id) version_id, is_applied
                      FROM {table} ORDER BY version_id, id DESC) latest
                  WHERE is_applied AND version_id <> 0"
            ),
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        Ok(ids_where(sources, |s| {
            s.version_number().is_some_and(|v| applied.contains(&v))
        }))
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        let table = qualified(schema, TABLE);
        if exists(client, &table)? {
            return Ok(());
        }
        // As goose's Postgres dialect creates it, with the row goose writes on creation; one
        // statement a query.
        client.batch_execute(&format!(
            "CREATE TABLE {table} (
                id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
                version_id bigint NOT NULL,
                is_applied boolean NOT NULL,
                tstamp timestamp NOT NULL DEFAULT now()
             )"
        ))?;
        client.batch_execute(&format!(
            "INSERT INTO {table} (version_id, is_applied) VALUES (0, true)"
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
        let version = source.version_number().unwrap_or_default();
        client.execute(
            &format!(
                "INSERT INTO {} (version_id, is_applied) VALUES ($1, true)",
                qualified(schema, TABLE)
            ),
            &[&version],
        )?;
        Ok(())
    }
}
