//! drizzle-kit: `{tag}.sql` files run in the order of `meta/_journal.json`'s entries (not by file
//! name, nor by `when`), each split at `--> statement-breakpoint`. History as drizzle-orm's
//! migrator keeps it: `drizzle.__drizzle_migrations (id serial, hash text, created_at bigint)`,
//! one row per file with the sha256 of the file's text and the journal's `when`.

use std::time::Duration;

use postgres::Client;
use sha2::{Digest, Sha256};

use super::{Format, Listing, Source, Tool, hex, history_rows};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Drizzle;

const JOURNAL: &str = "meta/_journal.json";
const SCHEMA: &str = "drizzle";
const TABLE: &str = "\"drizzle\".\"__drizzle_migrations\"";
const BREAKPOINT: &str = "--> statement-breakpoint";

impl Tool for Drizzle {
    fn format(&self) -> Format {
        Format::Drizzle
    }

    fn evidence(&self, listing: &Listing) -> Vec<String> {
        if listing.dir.join(JOURNAL).is_file() {
            vec![JOURNAL.to_string()]
        } else {
            Vec::new()
        }
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let journal_path = listing.dir.join(JOURNAL);
        let unreadable = |why: String| {
            Error::usage(format!(
                "{}: {why}; drizzle-kit writes it beside the migrations (`drizzle-kit generate`), \
                 and dbtool runs the migrations in its order",
                journal_path.display()
            ))
        };
        let journal = files
            .read(&journal_path)
            .map_err(|e| unreadable(format!("cannot read it: {e}")))?;
        let journal: serde_json::Value = serde_json::from_slice(&journal)
            .map_err(|e| unreadable(format!("not a drizzle journal ({e})")))?;
        let entries = journal["entries"]
            .as_array()
            .ok_or_else(|| unreadable("not a drizzle journal (no \"entries\" list)".into()))?;
        let mut sources = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let (Some(tag), Some(when)) = (entry["tag"].as_str(), entry["when"].as_i64()) else {
                return Err(unreadable(format!(
                    "entry {i} has no \"tag\" or no \"when\""
                )));
            };
            let path = listing.path(&format!("{tag}.sql"));
            if !path.is_file() {
                return Err(Error::usage(format!(
                    "{}: the journal lists {tag}, but {} is not there; restore it or regenerate \
                     the journal with drizzle-kit",
                    journal_path.display(),
                    path.display()
                )));
            }
            let text = listing.read_file(files, &path)?;
            sources.push(Source {
                id: tag.to_string(),
                version: Some(entry["idx"].as_i64().unwrap_or(i as i64).to_string()),
                description: tag.to_string(),
                path,
                // The breakpoint ends a statement as drizzle splits there; `;` keeps every offset.
                up: text.replace(BREAKPOINT, ";-- statement-breakpoint"),
                text,
                created: Some(when),
            });
        }
        for file in &listing.sql {
            let tag = file.trim_end_matches(".sql");
            if !sources.iter().any(|s| s.id == tag) {
                return Err(Error::usage(format!(
                    "{}: {file} is not in {JOURNAL}, so drizzle-kit would never run it; add it \
                     with drizzle-kit (`drizzle-kit generate --custom`) or move it out",
                    listing.dir.display()
                )));
            }
        }
        Ok(sources)
    }

    fn history_table(&self, _schema: &str) -> Option<String> {
        Some(TABLE.to_string())
    }

    /// drizzle's own rule: what has a `when` up to the latest `created_at` recorded is applied.
    fn tool_applied(
        &self,
        client: &mut Client,
        _schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let latest: Option<i64> = history_rows(
            client,
            TABLE,
            &format!("SELECT max(created_at) FROM {TABLE}"),
        )?
        .first()
        .and_then(|r| r.get(0));
        Ok(match latest {
            None => Vec::new(),
            Some(latest) => sources
                .iter()
                .filter(|s| s.created.is_some_and(|w| w <= latest))
                .map(|s| s.id.clone())
                .collect(),
        })
    }

    fn create_history(&self, client: &mut Client, _schema: &str) -> Result<(), postgres::Error> {
        // One statement a query (a Citus coordinator hands a query's whole text on).
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{SCHEMA}\""))?;
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                id SERIAL PRIMARY KEY,
                hash text NOT NULL,
                created_at bigint
             )"
        ))
    }

    fn record(
        &self,
        client: &mut Client,
        _schema: &str,
        source: &Source,
        _rank: usize,
        _took: Duration,
    ) -> Result<(), postgres::Error> {
        client.execute(
            &format!("INSERT INTO {TABLE} (\"hash\", \"created_at\") VALUES ($1, $2)"),
            &[&hash(&source.text), &source.created],
        )?;
        Ok(())
    }
}

/// drizzle-orm's `hash`: sha256 of the file's text, in hex.
fn hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// The tags the journal lists (none when there is no readable journal): files that are drizzle's.
pub fn journal_tags(listing: &Listing) -> Vec<String> {
    std::fs::read(listing.dir.join(JOURNAL))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|j| {
            j["entries"].as_array().map(|e| {
                e.iter()
                    .filter_map(|e| e["tag"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}
