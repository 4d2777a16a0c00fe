//! Flyway: `V{version}__{description}.sql` (versions compared part by part, `1.10` after `1.9`;
//! `V1_1__` is version 1.1), then `R__{description}.sql` repeatables in description order, run
//! again whenever their checksum changes. `U` undo files never run. Placeholders (`${name}`) are
//! refused: dbtool does not substitute them. History as Flyway keeps it:
//! `flyway_schema_history`, one row per run with its CRC32 checksum of the file's lines.

use std::cmp::Ordering;
use std::time::Duration;

use postgres::Client;

use super::{Format, Listing, Source, Tool, exists, history_rows, ids_where, misnamed, qualified};
use crate::error::{Error, Result};
use crate::files::ReadFiles;

pub struct Flyway;

/// A row of `flyway_schema_history`: version, description, checksum, success.
type HistoryRow = (Option<String>, String, Option<i32>, bool);

const TABLE: &str = "flyway_schema_history";

/// What a file name says to Flyway.
enum Kind<'a> {
    Versioned(Vec<&'a str>, &'a str),
    Repeatable(&'a str),
    Undo,
}

fn kind(file: &str) -> Option<Kind<'_>> {
    let stem = file.strip_suffix(".sql")?;
    if let Some(description) = stem.strip_prefix("R__") {
        return Some(Kind::Repeatable(description));
    }
    let (prefix, rest) = stem.split_at_checked(1)?;
    let (version, description) = rest.split_once("__")?;
    let parts: Vec<&str> = version.split(['.', '_']).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match prefix {
        "V" => Some(Kind::Versioned(parts, description)),
        "U" => Some(Kind::Undo),
        _ => None,
    }
}

/// Flyway's version order: part by part, as numbers of any width.
fn compare_versions(a: &[&str], b: &[&str]) -> Ordering {
    let number = |p: &str| {
        let p = p.trim_start_matches('0');
        (p.len(), p.to_string())
    };
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or("0"),
            b.get(i).copied().unwrap_or("0"),
        );
        match number(x).cmp(&number(y)) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

impl Tool for Flyway {
    fn format(&self) -> Format {
        Format::Flyway
    }

    /// What refinery does not read: dotted versions, descriptions beyond letters, digits and
    /// underscores (`V2__add-index.sql`), versions beyond 32 bits, repeatables, Flyway's
    /// configuration. (A `U` file alone says nothing: refinery reads it as unversioned.)
    fn evidence(&self, listing: &Listing) -> Vec<String> {
        let mut found: Vec<String> = listing
            .sql
            .iter()
            .filter(|f| match kind(f) {
                Some(Kind::Repeatable(_)) => true,
                Some(Kind::Versioned(..)) => {
                    super::refinery::check_name(f.trim_end_matches(".sql")).is_err()
                }
                Some(Kind::Undo) | None => false,
            })
            .cloned()
            .collect();
        found.extend(
            listing
                .others
                .iter()
                .filter(|f| *f == "flyway.conf" || *f == "flyway.toml")
                .cloned(),
        );
        found
    }

    fn read(&self, listing: &Listing, files: &mut ReadFiles) -> Result<Vec<Source>> {
        let mut versioned: Vec<(Vec<&str>, Source)> = Vec::new();
        let mut repeatable: Vec<Source> = Vec::new();
        for file in &listing.sql {
            let path = listing.path(file);
            let stem = file.trim_end_matches(".sql");
            if ["before", "after"].iter().any(|p| stem.starts_with(p)) {
                return Err(Error::usage(format!(
                    "{}: a Flyway callback, which dbtool does not run (a reset runs the \
                     migrations only); move it out of the migrations folder, or into a migration",
                    path.display()
                )));
            }
            let Some(kind) = kind(file) else {
                return Err(misnamed(
                    &path,
                    "Flyway",
                    "V{version}__{description}.sql and R__{description}.sql",
                ));
            };
            let (parts, description) = match kind {
                Kind::Undo => continue,
                Kind::Versioned(parts, description) => (Some(parts), description),
                Kind::Repeatable(description) => (None, description),
            };
            let text = listing.read_file(files, &path)?;
            if let Some((line, _)) = text.lines().enumerate().find(|(_, l)| l.contains("${")) {
                return Err(Error::usage(format!(
                    "{}:{}: a Flyway placeholder (${{...}}); dbtool does not substitute \
                     placeholders: write the value into the file",
                    path.display(),
                    line + 1
                )));
            }
            let source = Source::whole(
                file.trim_end_matches(".sql").to_string(),
                parts.as_ref().map(|p| p.join(".")),
                description.replace('_', " "),
                path,
                text,
            )
            .outside_when_concurrent();
            match parts {
                Some(parts) => {
                    if let Some((_, twin)) = versioned
                        .iter()
                        .find(|(v, _)| compare_versions(v, &parts) == Ordering::Equal)
                    {
                        return Err(Error::usage(format!(
                            "{}: version {} is used twice ({} and {file})",
                            listing.dir.display(),
                            parts.join("."),
                            twin.id
                        )));
                    }
                    versioned.push((parts, source));
                }
                None => repeatable.push(source),
            }
        }
        versioned.sort_by(|(a, _), (b, _)| compare_versions(a, b));
        repeatable.sort_by(|a, b| a.description.cmp(&b.description));
        Ok(versioned
            .into_iter()
            .map(|(_, s)| s)
            .chain(repeatable)
            .collect())
    }

    fn history_table(&self, schema: &str) -> Option<String> {
        Some(qualified(schema, TABLE))
    }

    /// Flyway's rule: a versioned migration recorded with success; a repeatable whose latest
    /// successful row has the file's checksum.
    fn tool_applied(
        &self,
        client: &mut Client,
        schema: &str,
        sources: &[Source],
    ) -> Result<Vec<String>> {
        let table = qualified(schema, TABLE);
        let rows: Vec<HistoryRow> = history_rows(
            client,
            &table,
            &format!(
                "SELECT version, description, checksum, success FROM {table} ORDER BY installed_rank"
            ),
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
        if let Some((version, description, _, _)) = rows.iter().find(|r| !r.3) {
            return Err(Error::Migration(format!(
                "{table} records a failed migration ({} {description}); `flyway repair` it, or \
                 reset the database",
                version.as_deref().unwrap_or("R")
            )));
        }
        Ok(ids_where(sources, |s| match &s.version {
            Some(v) => rows.iter().any(|r| r.0.as_deref() == Some(v.as_str())),
            None => rows
                .iter()
                .rev()
                .find(|r| r.0.is_none() && r.1 == s.description)
                .is_some_and(|r| r.2 == Some(checksum(&s.text))),
        }))
    }

    fn create_history(&self, client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
        let table = qualified(schema, TABLE);
        if exists(client, &table)? {
            return Ok(());
        }
        // As Flyway's PostgreSQL createMetaDataTable.sql writes it, one statement a query.
        client.batch_execute(&format!(
            "CREATE TABLE {table} (
                \"installed_rank\" INT NOT NULL,
                \"version\" VARCHAR(50),
                \"description\" VARCHAR(200) NOT NULL,
                \"type\" VARCHAR(20) NOT NULL,
                \"script\" VARCHAR(1000) NOT NULL,
                \"checksum\" INTEGER,
                \"installed_by\" VARCHAR(100) NOT NULL,
                \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),
                \"execution_time\" INTEGER NOT NULL,
                \"success\" BOOLEAN NOT NULL
             )"
        ))?;
        client.batch_execute(&format!(
            "ALTER TABLE {table} ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY (\"installed_rank\")"
        ))?;
        client.batch_execute(&format!(
            "CREATE INDEX \"flyway_schema_history_s_idx\" ON {table} (\"success\")"
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
        let table = qualified(schema, TABLE);
        let script = source
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let millis = i32::try_from(took.as_millis()).unwrap_or(i32::MAX);
        client.execute(
            &format!(
                "INSERT INTO {table} (installed_rank, version, description, type, script, checksum,
                                      installed_by, execution_time, success)
                 VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM {table}), $1, $2, 'SQL',
                         $3, $4, current_user, $5, true)"
            ),
            &[
                &source.version,
                &source.description,
                &script,
                &checksum(&source.text),
                &millis,
            ],
        )?;
        Ok(())
    }
}

/// Flyway's checksum: CRC32 over the file's lines (UTF-8, without line breaks, a BOM dropped),
/// as a signed 32-bit number.
pub fn checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = Crc32::default();
    // Java's readLine: lines end at \n, \r or \r\n.
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        crc.update(&rest.as_bytes()[..end]);
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix("\r\n") {
            rest = r;
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    crc.finish() as i32
}

/// CRC-32 (IEEE), as java.util.zip.CRC32.
struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xffff_ffff)
    }
}

impl Crc32 {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let mut c = (self.0 ^ u32::from(b)) & 0xff;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            self.0 = (self.0 >> 8) ^ c;
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_part_by_part() {
        let v = |s: &'static str| s.split('.').collect::<Vec<_>>();
        assert_eq!(compare_versions(&v("1.10"), &v("1.9")), Ordering::Greater);
        assert_eq!(compare_versions(&v("1.0"), &v("1")), Ordering::Equal);
        assert_eq!(compare_versions(&v("2"), &v("1.99")), Ordering::Greater);
        assert_eq!(
            compare_versions(&v("20240101120000"), &v("3")),
            Ordering::Greater
        );
    }

    #[test]
    fn the_checksum_is_crc32_of_the_lines() {
        // CRC32("abc") = 0x352441c2; line breaks are not part of it.
        assert_eq!(checksum("abc"), 0x3524_41c2);
        assert_eq!(checksum("ab\nc"), checksum("ab\r\nc"));
        assert_eq!(checksum("a\nbc"), 0x3524_41c2);
        assert_eq!(checksum("\u{feff}abc\n"), 0x3524_41c2);
    }
}
