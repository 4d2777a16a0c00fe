//! Prisma Migrate: `{timestamp}_{name}/migration.sql` folders, run in folder-name order, beside
//! `migration_lock.toml`. History as `prisma migrate deploy` keeps it: `_prisma_migrations` in
//! the application's schema, one row per folder with a uuid, the sha256 of `migration.sql`,
//! `started_at` and `finished_at`, and `applied_steps_count` 1.

use std::time::Duration;

use postgres::Client;
use sha2::{Digest, Sha256};

use super::{Format, Listing, Source, Tool, hex, history_rows, qualified};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Prisma;

const LOCK: &str = "migration_lock.toml";
const TABLE: &str = "_prisma_migrations";

impl Tool for Prisma {
    fn format(&self) -> Format {
        Format::Prisma
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        let mut found: Vec<String> = listing
            .others
            .iter()
            .filter(|n| *n == LOCK)
            .cloned()
            .collect();
        found.extend(
            listing
                .folders
                .iter()
                .filter(|f| listing.dir.join(f).join("migration.sql").is_file())
                .map(|f| format!("{f}/migration.sql")),
        );
        found
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        if let Some(file) = listing.sql.first() {
            return Err(Error::usage(format!(
                "{}: Prisma keeps each migration in a folder of its own ({{timestamp}}_{{name}}/migration.sql), \
                 so it would never run this file; move it into a folder of its own",
                listing.path(file).display()
            )));
        }
        let mut sources = Vec::new();
        for folder in &listing.folders {
            let path = listing.dir.join(folder).join("migration.sql");
            if !path.is_file() {
                return Err(Error::usage(format!(
                    "{}: this migration folder has no migration.sql (Prisma refuses such a folder \
                     too); restore it or remove the folder",
                    listing.dir.join(folder).display()
                )));
            }
            let text = listing.read_file(files, &path)?;
            let (version, description) = folder.split_once('_').unwrap_or((folder, ""));
            sources.push(
                Source::whole(
                    folder.clone(),
                    Some(version.to_string()),
                    description.to_string(),
                    path,
                    text,
                )
                .outside_when_concurrent(),
            );
        }
        Ok(sources)
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    /// Prisma's rule: a row that finished and was not rolled back.
    fn tool_applied(&self, client: &mut Client, schema: &str, _: &[Source]) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        // The migrations that finished, and one that started and did not (a failed deploy).
        let rows = history_rows(
            client,
            &table,
            &format!(
                "SELECT migration_name, finished_at IS NOT NULL FROM {table}
                  WHERE rolled_back_at IS NULL ORDER BY started_at"
            ),
        )?;
        let applied: Vec<String> = rows.iter().filter(|r| r.get(1)).map(|r| r.get(0)).collect();
        let failed: Option<String> = rows.iter().find(|r| !r.get::<_, bool>(1)).map(|r| r.get(0));
        if let Some(failed) = failed {
            return Err(Error::Migration(format!(
                "{table} records migration {failed} as started and not finished (a failed \
                 `prisma migrate deploy`); resolve it with `prisma migrate resolve`, or reset the \
                 database"
            )));
        }
        Ok(applied)
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        // As the Prisma schema engine creates it.
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,
                \"checksum\"              VARCHAR(64) NOT NULL,
                \"finished_at\"           TIMESTAMPTZ,
                \"migration_name\"        VARCHAR(255) NOT NULL,
                \"logs\"                  TEXT,
                \"rolled_back_at\"        TIMESTAMPTZ,
                \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),
                \"applied_steps_count\"   INTEGER NOT NULL DEFAULT 0
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
        _took: Duration,
    ) -> Result<(), postgres::Error> {
        let checksum = hex(&Sha256::digest(source.text.as_bytes()));
        client.execute(
            &format!(
                "INSERT INTO {} (id, checksum, finished_at, migration_name, logs, started_at,
                                 applied_steps_count)
                 VALUES (pg_catalog.gen_random_uuid()::text, $1, pg_catalog.clock_timestamp(), $2,
                         NULL, pg_catalog.clock_timestamp(), 1)",
                qualified(schema, TABLE)
            ),
            &[&checksum, &source.id],
        )?;
        Ok(())
    }
}
